using H2T.Configuration;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageTwoCommand(IAnsiConsole console) : Command<StageTwoSettings>
{
    public override int Execute(CommandContext context, StageTwoSettings settings, CancellationToken cancellationToken)
        => TrainingRuns.Execute(console, StageMode.StageTwo, settings, settings.Config, settings.Overrides,
            settings.From, settings.Out, settings.Resume, settings.TensorBoard, cancellationToken);
}
