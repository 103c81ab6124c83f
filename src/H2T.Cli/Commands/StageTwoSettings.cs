using System.ComponentModel;
using H2T.Data;
using H2T.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageTwoSettings : StageTwoOptions
{
    [CommandOption("--rho <RHO>")] [DefaultValue(0.25)] [Description("H2T fusion ratio in [0, 1]; 0 = plain class-balanced re-training")]
    public double Rho { get; init; } = 0.25;
    [CommandOption("--out <DIR>")]
    public string? Out { get; init; }
    [CommandOption("--val-per-class <N>")] [DefaultValue(0)]
    [Description("validation images per class: best.ckpt is then chosen on validation, not test (a stage-I split is kept)")]
    public int ValidationPerClass { get; init; }
    [CommandOption("--tensorboard")] [Description("also write TensorBoard event files (RUN/tensorboard)")]
    public bool TensorBoard { get; init; }
    [CommandOption("--config <FILE>")] [Description("YAML config with the reference's keys (configs/); its 'resume' is the stage-I checkpoint, H2T.NET or PyTorch")]
    public string? Config { get; init; }
    [CommandArgument(0, "[OVERRIDES]")] [Description("key=value config overrides after --config (dotted keys for nesting, e.g. H2T=0.5)")]
    public string[] Overrides { get; init; } = [];

    protected override bool FromRequired => Config is null;

    public StageTwoConfig ToConfig() => ToConfig(Rho);
}

/// <summary>The stage-II options <c>stage2</c> and <c>sweep</c> share.</summary>
public abstract class StageTwoOptions : CheckpointDataSettings
{
    [CommandOption("--from <CHECKPOINT>")] [Description("stage-I checkpoint (last.ckpt or best.ckpt of a stage1 run)")]
    public string From { get; init; } = "";
    [CommandOption("--epochs <E>")] [DefaultValue(10)]
    public int Epochs { get; init; } = 10;
    [CommandOption("--sampler <NAME>")] [DefaultValue("balanced")] [Description("tail side: balanced or reverse")]
    public string Sampler { get; init; } = "balanced";
    [CommandOption("--head-sampler <NAME>")] [DefaultValue("instance")]
    public string HeadSampler { get; init; } = "instance";
    [CommandOption("--shift-bn <ON|OFF>")] [DefaultValue("on")] [Description("let BatchNorm statistics adapt to stage-II data")]
    public string ShiftBn { get; init; } = "on";
    [CommandOption("--loss <LOSS>")] [DefaultValue("ce")]
    public string Loss { get; init; } = "ce";
    [CommandOption("--lr <LR>")] [DefaultValue(0.1)]
    public double Lr { get; init; } = 0.1;
    [CommandOption("--lr-factor <F>")] [DefaultValue(0.2)] [Description("classifier lr = lr x factor")]
    public double LrFactor { get; init; } = 0.2;
    [CommandOption("--wd <WD>")] [DefaultValue(5e-4)]
    public double WeightDecay { get; init; } = 5e-4;
    [CommandOption("--momentum <M>")] [DefaultValue(0.9)]
    public double Momentum { get; init; } = 0.9;
    [CommandOption("--batch-size <N>")] [DefaultValue(128)]
    public int BatchSize { get; init; } = 128;
    [CommandOption("--schedule <KIND>")] [DefaultValue("cosine")]
    public string Schedule { get; init; } = "cosine";
    [CommandOption("--reinit")] [Description("re-initialise the classifier instead of fine-tuning it")]
    public bool Reinit { get; init; }
    [CommandOption("--classifier <KIND>")] [DefaultValue("keep")] [Description("keep (the stage-I classifier) or lws (Decouple's learnable weight scaling)")]
    public string Classifier { get; init; } = "keep";
    [CommandOption("--seed <N>")] [DefaultValue(0)]
    public int Seed { get; init; }
    [CommandOption("--resume")]
    public bool Resume { get; init; }
    [CommandOption("--eval-every <N>")] [DefaultValue(1)] [Description("evaluate on the test set every N epochs (0: only the last)")]
    public int EvalEvery { get; init; } = 1;

    /// <summary>False when a config names the stage-I checkpoint instead.</summary>
    protected virtual bool FromRequired => true;

    public StageTwoConfig ToConfig(double rho) => new()
    {
        Epochs = Epochs,
        Optim = new OptimConfig(Lr, Momentum, WeightDecay, false, BatchSize),
        LrFactor = LrFactor,
        Schedule = new ScheduleConfig(ScheduleKinds.Table.Parse(Schedule)),
        Loss = new LossConfig(Loss),
        Rho = rho,
        TailSampler = Samplers.Aliases.Parse(Sampler),
        HeadSampler = Samplers.Aliases.Parse(HeadSampler),
        ShiftBn = Switches.Table.TryParse(ShiftBn, out var shift) ? shift : throw new UsageException($"--shift-bn {ShiftBn}: expected on or off"),
        ReinitClassifier = Reinit,
        Classifier = Classifier.ToLowerInvariant(),
        Seed = Seed,
        EvalEvery = EvalEvery,
        Precision = PrecisionOr(ComputePrecision.Fp32),
    };

    public override ValidationResult Validate()
    {
        if (FromRequired && string.IsNullOrWhiteSpace(From)) return ValidationResult.Error("--from: the stage-I checkpoint is required");
        return base.Validate();
    }
}
