using System.Globalization;
using H2T.Configuration;
using H2T.Fusion;
using H2T.Runs;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageTwoCommand(IAnsiConsole console) : Command<StageTwoSettings>
{
    public override int Execute(CommandContext context, StageTwoSettings settings, CancellationToken cancellationToken)
    {
        var experiment = ConfigSupport.Bind(StageMode.StageTwo, context, settings.Config, settings.Overrides);
        var check = experiment.CheckedStageTwo!;
        var config = check.Value;
        ConfigSupport.PrintIgnored(console, experiment, settings.Config);
        RunFolder run;
        Func<StageTwoStart> start;
        if (settings.Config is { } file)
        {
            run = new RunFolder(settings.Out ?? Path.Combine("runs", experiment.Name ?? Path.GetFileNameWithoutExtension(file)));
            // A PyTorch stage-I checkpoint (the reference's .pth.tar) is imported into the run folder first.
            start = () => StageTwoStart.FromConfig(experiment, file, settings.From, null, experiment.ValidationPerClass ?? 0,
                Path.Combine(run.Path, "imported-stage1.ckpt"), line => console.MarkupLineInterpolated($"{line}"));
        }
        else
        {
            var method = config.Fusion == StageTwoMethods.H2T ? string.Create(CultureInfo.InvariantCulture, $"rho{config.Rho:0.##}") : config.Fusion;
            // Default: inside the stage-I run, so stage-II runs of different backbones never share a folder.
            run = new RunFolder(settings.Out ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(settings.From))!,
                string.Create(CultureInfo.InvariantCulture, $"stage2-{method}-{config.Loss.Type}-e{config.Epochs}-s{config.Seed}")));
            start = () => StageTwoStart.FromCheckpoint(settings.From, experiment.Data.DataPath, experiment.ValidationPerClass is > 0 and var v ? v : null);
        }
        var device = CommandSupport.Start(settings);
        var from = CommandSupport.Train(start);
        console.MarkupLineInterpolated($"[bold]stage II[/] from {from.StageOneCheckpoint}: {(config.Fusion == StageTwoMethods.H2T ? $"rho {config.Rho}" : $"fusion {config.Fusion}")}, tail sampler {config.TailSampler}, head sampler {config.HeadSampler}, shift-BN {(config.ShiftBn ? "on" : "off")}, {config.Epochs} epochs -> {run.Path}");
        var metrics = CommandSupport.Train(() => CommandSupport.Observed(console, run.Path, settings.TensorBoard,
            o => StageTwoTrainer.Run(from.StageOneCheckpoint, check, from.LoadSplits(), run, device, o, settings.Resume, cancellationToken)));
        CommandSupport.Finish(console, run, config.Fusion == StageTwoMethods.H2T ? $"stage II rho={config.Rho}" : $"stage II {config.Fusion}", metrics);
        return 0;
    }
}
