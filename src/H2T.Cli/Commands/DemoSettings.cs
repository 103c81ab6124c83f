using System.ComponentModel;
using H2T.Runs;
using H2T.Settings;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class DemoSettings : ComputeSettings
{
    [CommandOption("--full")] [Description(
        "the full CPU protocol of docs/experiments.md: ResNet-32, stage I 30 epochs, stage II 10")]
    public bool Full { get; init; }
    [CommandOption("--backbone <NAME>")] [Description("default resnet8 (resnet32 with --full)")]
    public string? Backbone { get; init; }
    [CommandOption("--stage1-epochs <E>")] [Description("override stage-I epochs")]
    public int? StageOneEpochs { get; init; }
    [CommandOption("--stage2-epochs <E>")] [Description("override stage-II epochs")]
    public int? StageTwoEpochs { get; init; }
    [CommandOption("--mixup <ALPHA>")] [DefaultValue(1.0)] [Description("stage-I mixup alpha (0: plain CE)")]
    public double Mixup { get; init; } = 1.0;
    [CommandOption("--rho <SPEC>")] [DefaultValue(DemoPlan.DefaultRhoSpec)]
    [Description("H2T fusion ratios trained beside rho = 0 in the same pass (comma list or start:stop:step)")]
    public string Rho { get; init; } = DemoPlan.DefaultRhoSpec;
    [CommandOption("--val-per-class <N>")] [DefaultValue(100)] [Description(
        "validation images per class (choose rho without the test set)")]
    public int ValidationPerClass { get; init; } = 100;
    [CommandOption("--data <PATH>")] [Description(
        "folder with the Fashion-MNIST IDX files (default: the Debian package's)")]
    public string? DataPath { get; init; }
    [CommandOption("--out <DIR>")] [DefaultValue("runs/demo")]
    public string Out { get; init; } = "runs/demo";
    [CommandOption("--seed <N>")] [DefaultValue(0)]
    public int Seed { get; init; }
    [CommandOption("--resume")] [Description("reuse finished runs in --out and resume an interrupted one")]
    public bool Resume { get; init; }

    public DemoOptions ToOptions() => new()
    {
        Full = Full, Backbone = Backbone, StageOneEpochs = StageOneEpochs, StageTwoEpochs = StageTwoEpochs,
            MixupAlpha = Mixup,
        Rhos = SweepConfig.ParseRhos(Rho), ValidationPerClass = ValidationPerClass, DataPath = DataPath, Seed = Seed,
        Precision = PrecisionAsked ?? ComputePrecision.Fp32,
    };

    public override ValidationResult Validate() =>
        StageOneEpochs < 1 || StageTwoEpochs < 1 ? ValidationResult.Error("epochs must be >= 1")
        : ValidationPerClass < 1 ? ValidationResult.Error("--val-per-class must be >= 1")
        : base.Validate();
}
