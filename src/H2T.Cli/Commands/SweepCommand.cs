using System.ComponentModel;
using H2T.Configuration;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class SweepSettings : StageTwoOptions
{
    [CommandOption("--rho <SPEC>")] [Description(
        "values: start:stop:step (stop included) or a comma list (default 0:1:0.1) [[sweep.rho]]")]
    public string? Rho { get; init; }
    [CommandOption("--sweep <KEY=VALUES>")]
    [Description(
        "also vary a stage-II option, e.g. feature_mixup.alpha=0.2,0.4 (repeat for a grid; values as the key takes " +
        "them, or start:stop:step); members are every rho x every combination [[sweep.KEY]]")]
    public string[] Sweep { get; init; } = [];
    [CommandOption("--val-per-class <N>")]
    [Description(
        "validation images per class for choosing rho (default 100; 0: none; a stage-I run made with a split keeps " +
        "its own) [[val_per_class]]")]
    public string? ValidationPerClass { get; init; }
    [CommandOption("--out <DIR>")] [RunOption]
    [Description("sweep folder (default: sweep-... beside the stage-I checkpoint)")]
    public string? Out { get; init; }
}

/// <summary>Stage II for many rho values in one backbone pass; selects rho on validation.</summary>
public sealed class SweepCommand(IAnsiConsole console) : Command<SweepSettings>
{
    // A stage-2 config's single H2T value is not the sweep's: the sweep's values are sweep.rho (--rho).
    public override int Execute(CommandContext context, SweepSettings settings, CancellationToken cancellationToken) =>
        TrainingRuns.Execute(console, StageMode.Sweep, settings, settings.Config, settings.Overrides, settings.From,
            settings.Out, settings.Resume, tensorboard: false, cancellationToken);
}
