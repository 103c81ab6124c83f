using System.ComponentModel;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>stage1's flags. Each setting flag stands for the config key in brackets and is bound by the one binder
/// (<see cref="ConfigSupport.Bind"/>) from the values Spectre parsed; defaults live in Settings.StageOneConfig.
/// --precision is <see cref="ComputeSettings"/>'. Run options (<see cref="RunOptionAttribute"/>: --out, --resume,
/// --tensorboard, --config) are read here.</summary>
public sealed class StageOneSettings : DataOptions
{
    [CommandOption("--epochs <E>")] [Description("training epochs (default 30) [[num_epochs]]")]
    public string? Epochs { get; init; }
    [CommandOption("--loss <LOSS>")] [Description(
        "ce (default), cb-ce, focal, bsce, logit-adjust, ldam, las, gcl, ride (ride_* backbones), reslt (reslt_* " +
        "backbones) ... [[loss.type]]")]
    public string? Loss { get; init; }
    [CommandOption("--drw <EPOCH>")] [Description(
        "deferred re-weighting from this epoch (-1, default: off) [[loss.LDAM.reweight_epoch]]")]
    public string? DrwEpoch { get; init; }
    [CommandOption("--mixup <ALPHA>")] [Description("mixup alpha (default 1; 0: off) [[mixup_alpha]]")]
    public string? Mixup { get; init; }
    [CommandOption("--cmo <PROB>")] [Description(
        "CMO: CutMix minority images (inverse-frequency sampler) onto the batch with this probability (0, default: " +
        "off; needs --mixup 0) [[cmo.prob]]")]
    public string? Cmo { get; init; }
    [CommandOption("--lr <LR>")] [Description("peak learning rate (default 0.1) [[lr]]")]
    public string? Lr { get; init; }
    [CommandOption("--batch-size <N>")] [Description("default 128 [[batch_size]]")]
    public string? BatchSize { get; init; }
    [CommandOption("--wd <WD>")] [Description("weight decay (default 2e-4) [[weight_decay]]")]
    public string? WeightDecay { get; init; }
    [CommandOption("--momentum <M>")] [Description("default 0.9 [[momentum]]")]
    public string? Momentum { get; init; }
    // bool?: null is "not given", so --nesterov=false can override a config file's nesterov: true.
    [CommandOption("--nesterov")] [Description("Nesterov momentum [[nesterov]]")]
    public bool? Nesterov { get; init; }
    [CommandOption("--schedule <KIND>")] [Description("cosine (default), multistep or constant [[lr_scheduler.type]]")]
    public string? Schedule { get; init; }
    [CommandOption("--warmup <EPOCHS>")] [Description(
        "linear warm-up epochs (default 0) [[lr_scheduler.warmup_epochs]]")]
    public string? Warmup { get; init; }
    [CommandOption("--milestones <LIST>")] [Description("multistep epochs, e.g. 160,180 [[lr_scheduler.lr_step]]")]
    public string? Milestones { get; init; }
    [CommandOption("--backbone <NAME>")] [Description("default resnet32 [[backbone]]")]
    public string? Backbone { get; init; }
    [CommandOption("--pretrained <SOURCE>")] [Description(
        "initialise the backbone from weights: mlnet:resnet18, torchvision:ARCH, hf-hub:OWNER/REPO, or a file " +
        "(torch.save, safetensors, ONNX); the classifier starts fresh [[pretrained]]")]
    public string? Pretrained { get; init; }
    [CommandOption("--trainable <MODULES>")] [Description(
        "train only these backbone modules (comma list, e.g. layer4.2); the rest is frozen, BatchNorm in eval mode " +
        "[[trainable]]")]
    public string? Trainable { get; init; }
    [CommandOption("--tuning <KIND>")] [Description(
        "which part of the backbone trains: full (default), frozen, bias, norm, ssf; ViT: adaptformer, lora, " +
        "vpt-shallow, vpt-deep [[tuning]]")]
    public string? Tuning { get; init; }
    [CommandOption("--tuning-dim <N>")] [Description(
        "adapter width, LoRA rank or prompt count (default 0 = LIFT's rule) [[tuning_dim]]")]
    public string? TuningDim { get; init; }
    [CommandOption("--head-init <HOW>")] [Description(
        "classifier start: random (default) or class-mean (LIFT's) [[head_init]]")]
    public string? HeadInit { get; init; }
    [CommandOption("--cosine-scale <S>")] [Description(
        "factor on a cosine classifier's cosines; unset: 25 (LIFT's), or 1 for LDAM's family [[cosine_scale]]")]
    public string? CosineScale { get; init; }
    [CommandOption("--optimizer <NAME>")] [Description(
        "sgd (default) or adamw (no weight decay on norms and biases) [[optimizer]]")]
    public string? Optimizer { get; init; }
    [CommandOption("--memory-layout <L>")] [Description(
        "feature maps channels-last (default) or nchw [[memory_layout]]")]
    public string? MemoryLayout { get; init; }
    [CommandOption("--prefetch <N>")] [Description(
        "batches assembled ahead on a background thread (default 2; 0: on the training thread) [[prefetch]]")]
    public string? Prefetch { get; init; }
    [CommandOption("--classifier <KIND>")] [Description("linear (default), cosine or lws [[classifier]]")]
    public string? Classifier { get; init; }
    [CommandOption("--sampler <NAME>")] [Description(
        "instance (default), balanced, reverse, sqrt [[sampler.weighted_sampler.type]]")]
    public string? Sampler { get; init; }
    [CommandOption("--seed <N>")] [Description(
        "training seed: sampling, augmentation, init, mixup (default 0) [[seed]]")]
    public string? Seed { get; init; }
    [CommandOption("--eval-every <N>")] [Description(
        "evaluate on the test set every N epochs (default 1; 0: only the last) [[eval_every]]")]
    public string? EvalEvery { get; init; }
    [CommandOption("--out <DIR>")] [RunOption]
    [Description("run folder (default runs/stage1-<dataset>-if<F>-<loss>-mixup<A>-e<E>-s<seed>, "
        + "or runs/<name> with --config)")]
    public string? Out { get; init; }
    [CommandOption("--resume")] [RunOption] [Description("continue the run in --out from its last checkpoint")]
    public bool Resume { get; init; }
    [CommandOption("--tensorboard")] [RunOption] [Description("also write TensorBoard event files (RUN/tensorboard)")]
    public bool TensorBoard { get; init; }
    [CommandOption("--config <FILE>")] [RunOption]
    [Description("YAML config with the reference's keys (configs/); overrides and flags typed here override it")]
    public string? Config { get; init; }
    [CommandArgument(0,
        "[OVERRIDES]")] [Description(
        "key=value settings, any config key (dotted keys for nesting, e.g. lr_scheduler.type=cos, loss.focal.gamma=2)")]
    public string[] Overrides { get; init; } = [];

    protected override bool TrainsABackbone => true;
}
