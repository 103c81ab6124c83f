using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>stage2's own flags (see <see cref="StageTwoOptions"/> for how they are bound).</summary>
public sealed class StageTwoSettings : StageTwoOptions
{
    [CommandOption("--rho <RHO>")] [Description(
        "H2T fusion ratio in [[0, 1]] (default 0.25); 0 = plain class-balanced re-training [[H2T]]")]
    public string? Rho { get; init; }
    [CommandOption("--out <DIR>")] [RunOption]
    [Description("run folder (default: stage2-... inside the stage-I run, or runs/<name> with --config)")]
    public string? Out { get; init; }
    [CommandOption("--val-per-class <N>")]
    [Description(
        "validation images per class: best.ckpt is then chosen on validation, not test (a stage-I split is kept; " +
        "default 0) [[val_per_class]]")]
    public string? ValidationPerClass { get; init; }
    [CommandOption("--tensorboard")] [RunOption] [Description("also write TensorBoard event files (RUN/tensorboard)")]
    public bool TensorBoard { get; init; }
}

/// <summary>
/// The stage-II flags <c>stage2</c> and <c>sweep</c> share. Each setting flag stands for the config key in brackets
/// and is bound by the one binder (<see cref="ConfigSupport.Bind"/>, from the values Spectre parsed) with the YAML keys
/// and overrides; defaults live in Settings.StageTwoConfig. --from, --resume, --config, --device and --threads are run
/// options (<see cref="RunOptionAttribute"/>), read here.
/// </summary>
public abstract class StageTwoOptions : CheckpointDataSettings
{
    /// <summary>--precision and --data are the config keys precision and data_path here.</summary>
    protected override bool BindsConfig => true;

    [CommandOption("--from <CHECKPOINT>")] [RunOption]
    [Description("stage-I checkpoint (last.ckpt or best.ckpt of a stage1 run)")]
    public string From { get; init; } = "";
    [CommandOption("--epochs <E>")] [Description("default 10 [[num_epochs]]")]
    public string? Epochs { get; init; }
    [CommandOption("--sampler <NAME>")] [Description(
        "tail side: balanced (default) or reverse [[sampler.weighted_sampler.type]]")]
    public string? Sampler { get; init; }
    [CommandOption("--head-sampler <NAME>")] [Description("head side: instance (default) [[sampler.dual_sample.type]]")]
    public string? HeadSampler { get; init; }
    [CommandOption("--shift-bn <ON|OFF>")] [Description(
        "let BatchNorm statistics adapt to stage-II data (default on) [[shift_bn]]")]
    public string? ShiftBn { get; init; }
    [CommandOption("--fusion <METHOD>")] [Description(
        "feature augmentation, a name from the stage-II method table (h2t, the default, uses --rho; `h2t info` lists " +
        "the others and their options, given as key=value) [[fusion]]")]
    public string? Fusion { get; init; }
    [CommandOption("--feature-cache <MODE>")]
    [Description(
        "off (a backbone pass per batch), pooled (the exact path's first epoch(s) recorded as pooled vectors, then " +
        "replayed) or maps (the final maps of a few views per image, BatchNorm re-estimated once per side; on = " +
        "maps); docs/performance.md. Default off [[feature_cache]]")]
    public string? FeatureCache { get; init; }
    [CommandOption("--cache-bn-batches <N>")] [Description(
        "batches per side BatchNorm is re-estimated on with shift-BN, default 0 (one epoch) " +
        "[[feature_cache_bn_batches]]")]
    public string? CacheBnBatches { get; init; }
    [CommandOption("--cache-views <N>")] [Description(
        "maps: augmented views cached per training image; pooled: epochs of the exact path recorded, then replayed " +
        "(default 0, meaning 4 views for maps and 1 recorded epoch for pooled) [[feature_cache_views]]")]
    public string? CacheViews { get; init; }
    [CommandOption("--cache-storage <T>")] [Description(
        "cached maps as auto (default: the backbone's arithmetic), bf16 or fp32 [[feature_cache_storage]]")]
    public string? CacheStorage { get; init; }
    [CommandOption("--loss <LOSS>")] [Description("default ce [[loss.type]]")]
    public string? Loss { get; init; }
    [CommandOption("--lr <LR>")] [Description("default 0.1 [[lr]]")]
    public string? Lr { get; init; }
    [CommandOption("--lr-factor <F>")] [Description(
        "classifier lr = lr x factor (default 0.2) [[lr_scheduler.lr_factor]]")]
    public string? LrFactor { get; init; }
    [CommandOption("--optimizer <NAME>")] [Description(
        "sgd (default) or adamw (no weight decay on norms and biases) [[optimizer]]")]
    public string? Optimizer { get; init; }
    [CommandOption("--wd <WD>")] [Description("default 5e-4 [[weight_decay]]")]
    public string? WeightDecay { get; init; }
    [CommandOption("--momentum <M>")] [Description("default 0.9 [[momentum]]")]
    public string? Momentum { get; init; }
    [CommandOption("--batch-size <N>")] [Description("default 128 [[batch_size]]")]
    public string? BatchSize { get; init; }
    [CommandOption("--schedule <KIND>")] [Description("cosine (default), multistep or constant [[lr_scheduler.type]]")]
    public string? Schedule { get; init; }
    [CommandOption("--reinit")] [Description(
        "re-initialise the classifier instead of fine-tuning it [[reinit_classifier]]")]
    public bool? Reinit { get; init; }
    [CommandOption("--classifier <KIND>")] [Description(
        "keep (default: the stage-I classifier) or lws (Decouple's learnable weight scaling) [[classifier]]")]
    public string? Classifier { get; init; }
    [CommandOption("--memory-layout <L>")] [Description(
        "feature maps channels-last (default) or nchw [[memory_layout]]")]
    public string? MemoryLayout { get; init; }
    [CommandOption("--prefetch <N>")] [Description("batches assembled ahead (default 2) [[prefetch]]")]
    public string? Prefetch { get; init; }
    [CommandOption("--seed <N>")] [Description("default 0 [[seed]]")]
    public string? Seed { get; init; }
    [CommandOption("--resume")] [RunOption]
    public bool Resume { get; init; }
    [CommandOption("--eval-every <N>")] [Description(
        "evaluate on the test set every N epochs (default 1; 0: only the last) [[eval_every]]")]
    public string? EvalEvery { get; init; }
    [CommandOption("--config <FILE>")] [RunOption]
    [Description("a stage-2 YAML config (configs/); its 'resume' is the stage-I checkpoint, H2T.NET or PyTorch")]
    public string? Config { get; init; }
    [CommandArgument(0,
        "[OVERRIDES]")] [Description(
        "key=value settings, any config key (dotted keys for nesting, e.g. H2T=0.5, feature_mixup.alpha=0.4)")]
    public string[] Overrides { get; init; } = [];

    public override ValidationResult Validate()
    {
        if (Config is null &&
            string.IsNullOrWhiteSpace(From)) return ValidationResult.Error(
            "--from: the stage-I checkpoint is required");
        return base.Validate();
    }
}
