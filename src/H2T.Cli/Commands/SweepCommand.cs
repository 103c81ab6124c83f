using System.ComponentModel;
using H2T.Configuration;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class SweepSettings : StageTwoOptions
{
    [CommandOption("--rho <SPEC>")] [Description("values: start:stop:step (stop included) or a comma list (default 0:1:0.1) [[sweep.rho]]")]
    public string? Rho { get; init; }
    [CommandOption("--sweep <KEY=VALUES>")]
    [Description("also vary a stage-II option, e.g. feature_mixup.alpha=0.2,0.4 (repeat for a grid; values as the key takes them, or start:stop:step); members are every rho x every combination [[sweep.KEY]]")]
    public string[] Sweep { get; init; } = [];
    [CommandOption("--val-per-class <N>")]
    [Description("validation images per class for choosing rho (default 100; 0: none; a stage-I run made with a split keeps its own) [[val_per_class]]")]
    public string? ValidationPerClass { get; init; }
    [CommandOption("--out <DIR>")] [Description("sweep folder (default: sweep-... beside the stage-I checkpoint)")]
    public string? Out { get; init; }
}

/// <summary>Stage II for many rho values in one backbone pass; selects rho on validation.</summary>
public sealed class SweepCommand(IAnsiConsole console) : Command<SweepSettings>
{
    public override int Execute(CommandContext context, SweepSettings settings, CancellationToken cancellationToken)
    {
        // A stage-2 config's single H2T value is not the sweep's: the sweep's values are sweep.rho (--rho).
        var experiment = ConfigSupport.Bind(StageMode.Sweep, context, settings.Config, settings.Overrides);
        var check = experiment.CheckedSweep!;
        var config = check.Value;
        ConfigSupport.PrintIgnored(console, experiment, settings.Config);
        Func<StageTwoStart> start = settings.Config is { } file
            ? () => StageTwoStart.FromConfig(experiment, file, settings.From, null, config.ValidationPerClass)
            : () => StageTwoStart.FromCheckpoint(settings.From, experiment.Data.DataPath, config.ValidationPerClass > 0 ? config.ValidationPerClass : null);
        var device = CommandSupport.Start(settings);
        var from = CommandSupport.Train(start);
        var two = config.StageTwo;
        var outDir = Path.GetFullPath(settings.Out ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(from.StageOneCheckpoint))!,
            $"sweep-{two.Loss.Type}-e{two.Epochs}-s{two.Seed}"));
        var what = config.Options.Count == 0 ? $"rho {string.Join(", ", config.Rhos)}"
            : string.Join(" x ", (config.Rhos.Length > 1 ? [$"rho {string.Join(", ", config.Rhos)}"] : Array.Empty<string>())
                .Concat(config.Options.Select(o => $"{o.Key} {string.Join(", ", o.Values.Select(v => v.Text))}")));
        console.MarkupLineInterpolated($"[bold]stage II sweep[/] from {from.StageOneCheckpoint}: {what} ({config.Points().Count} members) in one pass, {two.Epochs} epochs -> {outDir}");
        var result = CommandSupport.Train(() => ConsoleObserver.Run(console,
            o => StageTwoSweep.Run(from.StageOneCheckpoint, check, from.LoadSplits(), outDir, device, o, settings.Resume, cancellationToken)));
        CommandSupport.WriteSweep(console, result, outDir);
        return 0;
    }
}
