using System.ComponentModel;
using H2T.Data;
using H2T.Models;
using H2T.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class StageOneSettings : DataOptions
{
    [CommandOption("--epochs <E>")] [DefaultValue(30)] [Description("training epochs")]
    public int Epochs { get; init; } = 30;
    [CommandOption("--loss <LOSS>")] [DefaultValue("ce")] [Description("ce, cb-ce, focal, bsce, logit-adjust, ldam, las, gcl, ride (ride_* backbones), reslt (reslt_* backbones) ...")]
    public string Loss { get; init; } = "ce";
    [CommandOption("--drw <EPOCH>")] [DefaultValue(-1)] [Description("deferred re-weighting from this epoch (-1: off)")]
    public int DrwEpoch { get; init; } = -1;
    [CommandOption("--mixup <ALPHA>")] [DefaultValue(1.0)] [Description("mixup alpha (0: off)")]
    public double Mixup { get; init; } = 1.0;
    [CommandOption("--cmo <PROB>")] [DefaultValue(0.0)] [Description("CMO: CutMix minority images (inverse-frequency sampler) onto the batch with this probability (0: off; needs --mixup 0)")]
    public double Cmo { get; init; }
    [CommandOption("--lr <LR>")] [DefaultValue(0.1)]
    public double Lr { get; init; } = 0.1;
    [CommandOption("--batch-size <N>")] [DefaultValue(128)]
    public int BatchSize { get; init; } = 128;
    [CommandOption("--wd <WD>")] [DefaultValue(2e-4)] [Description("weight decay")]
    public double WeightDecay { get; init; } = 2e-4;
    [CommandOption("--momentum <M>")] [DefaultValue(0.9)]
    public double Momentum { get; init; } = 0.9;
    [CommandOption("--nesterov")]
    public bool Nesterov { get; init; }
    [CommandOption("--schedule <KIND>")] [DefaultValue("cosine")] [Description("cosine, multistep or constant")]
    public string Schedule { get; init; } = "cosine";
    [CommandOption("--warmup <EPOCHS>")] [DefaultValue(0)] [Description("linear warm-up epochs")]
    public int Warmup { get; init; }
    [CommandOption("--milestones <LIST>")] [Description("multistep epochs, e.g. 160,180")]
    public string? Milestones { get; init; }
    [CommandOption("--backbone <NAME>")] [DefaultValue("resnet32")]
    public string Backbone { get; init; } = "resnet32";
    [CommandOption("--pretrained <FILE>")] [Description("initialise the backbone from a torch.save file (a torchvision state dict, or a checkpoint h2t import reads); the classifier starts fresh")]
    public string? Pretrained { get; init; }
    [CommandOption("--trainable <MODULES>")] [Description("train only these backbone modules (comma list, e.g. layer4.2); the rest is frozen, BatchNorm in eval mode")]
    public string? Trainable { get; init; }
    [CommandOption("--precision <P>")] [DefaultValue("fp32")] [Description(MixedPrecision.Help)]
    public string Precision { get; init; } = "fp32";
    [CommandOption("--classifier <KIND>")] [DefaultValue("linear")] [Description("linear, cosine or lws")]
    public string Classifier { get; init; } = "linear";
    [CommandOption("--sampler <NAME>")] [DefaultValue("instance")]
    public string Sampler { get; init; } = "instance";
    [CommandOption("--seed <N>")] [DefaultValue(0)] [Description("training seed: sampling, augmentation, init, mixup")]
    public int Seed { get; init; }
    [CommandOption("--out <DIR>")] [Description("run folder (default runs/stage1-<dataset>-<loss>-s<seed>)")]
    public string? Out { get; init; }
    [CommandOption("--resume")] [Description("continue the run in --out from its last checkpoint")]
    public bool Resume { get; init; }
    [CommandOption("--eval-every <N>")] [DefaultValue(1)] [Description("evaluate on the test set every N epochs (0: only the last)")]
    public int EvalEvery { get; init; } = 1;
    [CommandOption("--tensorboard")] [Description("also write TensorBoard event files (RUN/tensorboard)")]
    public bool TensorBoard { get; init; }
    [CommandOption("--config <FILE>")] [Description("YAML config with the reference's keys (configs/); flags typed here override it")]
    public string? Config { get; init; }
    [CommandArgument(0, "[OVERRIDES]")] [Description("key=value config overrides after --config (dotted keys for nesting, e.g. lr_scheduler.type=cos)")]
    public string[] Overrides { get; init; } = [];

    public StageOneConfig ToConfig() => new()
    {
        Data = ToDataConfig(),
        Backbone = Backbone,
        Pretrained = Pretrained,
        Precision = MixedPrecision.Parse(Precision),
        Trainable = string.IsNullOrWhiteSpace(Trainable) ? null : Trainable.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        Classifier = ModelFactory.ResolveHead(Classifier) ?? Classifier,
        Epochs = Epochs,
        Optim = new OptimConfig(Lr, Momentum, WeightDecay, Nesterov, BatchSize),
        Schedule = new ScheduleConfig(ScheduleKinds.Table.Parse(Schedule), Warmup, ParseInts(Milestones, "--milestones")),
        Loss = new LossConfig(Loss) { DrwStartEpoch = DrwEpoch },
        MixupAlpha = Mixup,
        Cmo = Cmo != 0 ? new CmoConfig(Probability: Cmo) : null,
        Sampler = Samplers.Aliases.Parse(Sampler),
        Seed = Seed,
        EvalEvery = EvalEvery,
    };

    internal static int[]? ParseInts(string? s, string option)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        try { return s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new UsageException($"{option} {s}: expected comma-separated whole numbers"); }
    }
}
