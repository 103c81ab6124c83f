using System.ComponentModel;
using H2T.Runs;
using H2T.Configuration;
using H2T.Reporting;
using H2T.Settings;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class SweepSettings : StageTwoOptions
{
    [CommandOption("--rho <SPEC>")] [DefaultValue("0:1:0.1")] [Description("values: start:stop:step (stop included) or a comma list")]
    public string Rho { get; init; } = "0:1:0.1";
    [CommandOption("--val-per-class <N>")] [DefaultValue(100)]
    [Description("validation images per class for choosing rho (0: none; a stage-I run made with a split keeps its own)")]
    public int ValidationPerClass { get; init; } = 100;
    [CommandOption("--out <DIR>")] [Description("sweep folder (default: sweep-... beside the stage-I checkpoint)")]
    public string? Out { get; init; }
    [CommandOption("--config <FILE>")] [Description("a stage-2 YAML config (configs/): its settings and 'resume' checkpoint, swept over --rho (its H2T value is replaced)")]
    public string? Config { get; init; }
    [CommandArgument(0, "[OVERRIDES]")] [Description("key=value config overrides after --config")]
    public string[] Overrides { get; init; } = [];

    protected override bool FromRequired => Config is null;
}

/// <summary>Stage II for many rho values in one backbone pass; selects rho on validation.</summary>
public sealed class SweepCommand(IAnsiConsole console) : Command<SweepSettings>
{
    public override int Execute(CommandContext context, SweepSettings settings, CancellationToken cancellationToken)
    {
        ConfigSupport.RequireConfigFor(settings.Overrides, settings.Config);
        var rhos = CommandSupport.Guard(() => SweepConfig.ParseRhos(settings.Rho), _ => { });
        StageTwoConfig baseConfig;
        Func<StageTwoStart> start;
        if (settings.Config is { } file)
        {
            // The sweep's own options (--rho is a list here, not the config's single H2T value) stay out of the config.
            var args = context.Arguments.ToList();
            int at = args.FindIndex(a => a == "--rho" || a.StartsWith("--rho=", StringComparison.Ordinal));
            if (at >= 0) args.RemoveRange(at, args[at].Contains('=', StringComparison.Ordinal) ? 1 : Math.Min(2, args.Count - at));
            var experiment = ConfigSupport.Load(StageMode.StageTwo, file, settings.Overrides, args);
            ConfigSupport.PrintIgnored(console, experiment, file);
            baseConfig = experiment.StageTwo;
            start = () => StageTwoStart.FromConfig(experiment, file, settings.From, settings.DataPath, settings.ValidationPerClass);
        }
        else
        {
            baseConfig = CommandSupport.Guard(() => settings.ToConfig(0), _ => { });
            start = () => StageTwoStart.FromCheckpoint(settings.From, settings.DataPath, settings.ValidationPerClass > 0 ? settings.ValidationPerClass : null);
        }
        var config = CommandSupport.Guard(() => new SweepConfig(baseConfig, rhos, settings.ValidationPerClass), c => c.Validate());
        var device = CommandSupport.Start(settings);
        var from = CommandSupport.Train(start);
        var outDir = Path.GetFullPath(settings.Out ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(from.StageOneCheckpoint))!,
            $"sweep-{baseConfig.Loss.Type}-e{baseConfig.Epochs}-s{baseConfig.Seed}"));
        console.MarkupLineInterpolated($"[bold]stage II sweep[/] from {from.StageOneCheckpoint}: rho {string.Join(", ", config.Rhos)} in one pass, {baseConfig.Epochs} epochs -> {outDir}");
        var result = CommandSupport.Train(() => ConsoleObserver.Run(console,
            o => StageTwoSweep.Run(from.StageOneCheckpoint, config, from.LoadSplits(), outDir, device, o, settings.Resume, cancellationToken)));
        CommandSupport.WriteSweep(console, result, outDir);
        return 0;
    }
}
