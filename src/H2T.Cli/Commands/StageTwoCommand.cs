using H2T.Runs;
using H2T.Configuration;
using H2T.Settings;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageTwoCommand(IAnsiConsole console) : Command<StageTwoSettings>
{
    public override int Execute(CommandContext context, StageTwoSettings settings, CancellationToken cancellationToken)
    {
        ConfigSupport.RequireConfigFor(settings.Overrides, settings.Config);
        StageTwoConfig config;
        RunFolder run;
        Func<StageTwoStart> start;
        if (settings.Config is { } file)
        {
            var experiment = ConfigSupport.Load(StageMode.StageTwo, file, settings.Overrides, context.Arguments);
            config = CommandSupport.Guard(() => experiment.StageTwo, c => c.Validate());
            ConfigSupport.PrintIgnored(console, experiment, file);
            run = new RunFolder(settings.Out ?? Path.Combine("runs", experiment.Name ?? Path.GetFileNameWithoutExtension(file)));
            // A PyTorch stage-I checkpoint (the reference's .pth.tar) is imported into the run folder first.
            start = () => StageTwoStart.FromConfig(experiment, file, settings.From, settings.DataPath, settings.ValidationPerClass,
                Path.Combine(run.Path, "imported-stage1.ckpt"), line => console.MarkupLineInterpolated($"{line}"));
        }
        else
        {
            config = CommandSupport.Guard(settings.ToConfig, c => c.Validate());
            // Default: inside the stage-I run, so stage-II runs of different backbones never share a folder.
            run = new RunFolder(settings.Out ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(settings.From))!,
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"stage2-rho{settings.Rho:0.##}-{settings.Loss}-e{settings.Epochs}-s{settings.Seed}")));
            start = () => StageTwoStart.FromCheckpoint(settings.From, settings.DataPath, settings.ValidationPerClass > 0 ? settings.ValidationPerClass : null);
        }
        var device = CommandSupport.Start(settings);
        var from = CommandSupport.Train(start);
        console.MarkupLineInterpolated($"[bold]stage II[/] from {from.StageOneCheckpoint}: rho {config.Rho}, tail sampler {config.TailSampler}, head sampler {config.HeadSampler}, shift-BN {(config.ShiftBn ? "on" : "off")}, {config.Epochs} epochs -> {run.Path}");
        var metrics = CommandSupport.Train(() => CommandSupport.Observed(console, run.Path, settings.TensorBoard,
            o => StageTwoTrainer.Run(from.StageOneCheckpoint, config, from.LoadSplits(), run, device, o, settings.Resume, cancellationToken)));
        CommandSupport.Finish(console, run, $"stage II rho={config.Rho}", metrics);
        return 0;
    }
}
