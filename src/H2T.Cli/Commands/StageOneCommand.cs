using System.Globalization;
using H2T.Configuration;
using H2T.Data;
using H2T.Runs;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageOneCommand(IAnsiConsole console) : Command<StageOneSettings>
{
    public override int Execute(CommandContext context, StageOneSettings settings, CancellationToken cancellationToken)
    {
        var experiment = ConfigSupport.Bind(StageMode.StageOne, context, settings.Config, settings.Overrides);
        var check = experiment.CheckedStageOne!;
        var config = check.Value;
        ConfigSupport.PrintIgnored(console, experiment, settings.Config);
        var device = CommandSupport.Start(settings);
        var run = new RunFolder(settings.Out ?? Path.Combine("runs", settings.Config is { } file
            ? experiment.Name ?? Path.GetFileNameWithoutExtension(file)
            : string.Create(CultureInfo.InvariantCulture, $"stage1-{config.Data.Dataset}-if{config.Data.ImbFactor:0.##}-{config.Loss.Type}-mixup{config.MixupAlpha:0.##}-e{config.Epochs}-s{config.Seed}")));
        // The reference's 'resume' names the checkpoint to continue from; here a run continues from its own folder.
        var resume = settings.Resume || experiment.Resume is not null;
        console.MarkupLineInterpolated($"[bold]stage I[/]{(settings.Config is null ? "" : $" from {settings.Config}")}: {config.Data.Dataset} IF={config.Data.ImbFactor} {config.Backbone} loss {config.Loss.Type} mixup {config.MixupAlpha} {config.Epochs} epochs -> {run.Path}");
        var metrics = CommandSupport.Train(() =>
        {
            var splits = DatasetCatalog.Load(config.Data);
            experiment.CheckNumClasses(splits.NumClasses, splits.Name);
            return CommandSupport.Observed(console, run.Path, settings.TensorBoard, o => StageOneTrainer.Run(check, splits, run, device, o, resume, cancellationToken));
        });
        CommandSupport.Finish(console, run, "stage I", metrics);
        return 0;
    }
}
