using H2T.Configuration;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageOneCommand(IAnsiConsole console) : Command<StageOneSettings>
{
    public override int Execute(CommandContext context, StageOneSettings settings, CancellationToken cancellationToken)
        => TrainingRuns.Execute(console, StageMode.StageOne, settings, settings.Config, settings.Overrides, null,
            settings.Out, settings.Resume, settings.TensorBoard, cancellationToken);
}
