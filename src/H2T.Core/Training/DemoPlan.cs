using H2T.Runs;
using H2T.Configuration;
using H2T.Models;
using H2T.Settings;

namespace H2T.Training;

/// <summary>What a user may change about the demo; everything else is the plan's.</summary>
public sealed record DemoOptions
{
    /// <summary>The CPU protocol of docs/experiments.md: ResNet-32, stage I 30 epochs, stage II 10, evaluated every
    /// epoch.</summary>
    public bool Full { get; init; }
    public string? Backbone { get; init; }
    public int? StageOneEpochs { get; init; }
    public int? StageTwoEpochs { get; init; }
    public double MixupAlpha { get; init; } = 1.0;
    /// <summary>The H2T ratios trained beside rho = 0 (which is always added).</summary>
    public IReadOnlyList<double> Rhos { get; init; } = DemoPlan.DefaultRhos;
    public int ValidationPerClass { get; init; } = 100;
    public string? DataPath { get; init; }
    public int Seed { get; init; }
    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;
}

/// <summary>
/// The main job on the default dataset: Fashion-MNIST-LT (IF = 100) with a class-balanced validation split, stage I
/// (CE + mixup), then one stage-II pass that trains rho = 0 (plain class-balanced re-training) and the H2T ratios side
/// by side on the same backbone outputs, rho picked on validation.
/// </summary>
public sealed record DemoPlan(DataConfig Data, Checked<StageOneConfig> StageOne, Checked<SweepConfig> Sweep)
{
    // Measured on the 2-core machine: ResNet-8 trains about 5x faster than ResNet-32, so 30 mixup epochs (the
    // protocol's length, which H2T needs: on an 8-epoch ResNet-32 it only costs accuracy) fit in about 7 minutes.
    public const string DefaultBackbone = "resnet8";
    public const int DefaultStageOneEpochs = 30;
    public const int DefaultStageTwoEpochs = 10;
    public const string DefaultRhoSpec = "0.05,0.1,0.25,0.5";
    public static IReadOnlyList<double> DefaultRhos { get; } = [0.05, 0.1, 0.25, 0.5];

    public static DemoPlan For(DemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var data = new DataConfig(Dataset: "fashion-mnist", DataPath: options.DataPath, ImbFactor: 100,
            ValidationPerClass: options.ValidationPerClass);
        var stageOne = new StageOneConfig
        {
            Data = data,
            Backbone = options.Backbone ?? (options.Full ? "resnet32" : DefaultBackbone),
            Epochs = options.StageOneEpochs ?? (options.Full ? 30 : DefaultStageOneEpochs),
            Loss = new LossConfig("ce"),
            MixupAlpha = options.MixupAlpha,
            Seed = options.Seed,
            // The demo evaluates once per run (at its end) to stay within minutes; stage1/stage2 default to every
            // epoch.
            EvalEvery = options.Full ? 1 : 0,
            Precision = options.Precision,
        };
        var rhos = options.Rhos.Where(r => r != 0).Prepend(0).ToArray();
        var stageTwo = new StageTwoConfig
        {
            Epochs = options.StageTwoEpochs ?? (options.Full ? 10 : DefaultStageTwoEpochs), Seed = options.Seed,
            EvalEvery = options.Full ? 1 : 0, Precision = options.Precision,
        };
        return new DemoPlan(data, stageOne.Check(), new SweepConfig(stageTwo, rhos,
            options.ValidationPerClass).Check());
    }

    /// <summary>The H2T row to set against rho = 0: the selected rho, or (when validation kept rho = 0) the H2T rho
    /// best on validation.</summary>
    public static SweepRow H2TRow(SweepResult sweep)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        return sweep.Rows.Where(r => r.Rho > 0).OrderByDescending(r => sweep.SelectedRho == r.Rho ? 1 : 0)
            .ThenByDescending(r => r.FinalValidation?.Top1 ?? 0).First();
    }
}
