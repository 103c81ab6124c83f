using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageOneCommand(IAnsiConsole console) : Command<StageOneSettings>
{
    public override int Execute(CommandContext context, StageOneSettings settings, CancellationToken cancellationToken)
    {
        ConfigSupport.RequireConfigFor(settings.Overrides, settings.Config);
        if (settings.Config is { } file) return RunFromConfig(context, settings, file, cancellationToken);
        var config = CommandSupport.Guard(settings.ToConfig, c => c.Validate());
        var device = CommandSupport.Start(settings);
        var run = new RunFolder(settings.Out ?? Path.Combine("runs", string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"stage1-{settings.Dataset}-if{settings.ImbFactor:0.##}-{settings.Loss}-mixup{settings.Mixup:0.##}-e{settings.Epochs}-s{settings.Seed}")));
        console.MarkupLineInterpolated($"[bold]stage I[/] {settings.Dataset} IF={settings.ImbFactor} {config.Backbone} loss {config.Loss.Type} mixup {config.MixupAlpha} {config.Epochs} epochs -> {run.Path}");
        var metrics = CommandSupport.Train(() => CommandSupport.Observed(console, run.Path, settings.TensorBoard, o => StageOneTrainer.Run(config, run, device, o, settings.Resume, cancellationToken)));
        CommandSupport.Finish(console, run, "stage I", metrics);
        return 0;
    }

    int RunFromConfig(CommandContext context, StageOneSettings settings, string file, CancellationToken cancellationToken)
    {
        var experiment = ConfigSupport.Load(StageMode.StageOne, file, settings.Overrides, context.Arguments);
        var config = CommandSupport.Guard(() => experiment.StageOne, c => c.Validate());
        ConfigSupport.PrintIgnored(console, experiment, file);
        var device = CommandSupport.Start(settings);
        var run = new RunFolder(settings.Out ?? Path.Combine("runs", experiment.Name ?? Path.GetFileNameWithoutExtension(file)));
        // The reference's 'resume' names the checkpoint to continue from; here a run continues from its own folder.
        var resume = settings.Resume || experiment.Resume is not null;
        console.MarkupLineInterpolated($"[bold]stage I[/] from {file}: {config.Data.Dataset} IF={config.Data.ImbFactor} {config.Backbone} loss {config.Loss.Type} mixup {config.MixupAlpha} {config.Epochs} epochs -> {run.Path}");
        var metrics = CommandSupport.Train(() =>
        {
            var splits = DatasetCatalog.Load(config.Data);
            experiment.CheckNumClasses(splits.NumClasses, splits.Name);
            return CommandSupport.Observed(console, run.Path, settings.TensorBoard, o => StageOneTrainer.Run(config, splits, run, device, o, resume, cancellationToken));
        });
        CommandSupport.Finish(console, run, "stage I", metrics);
        return 0;
    }
}
