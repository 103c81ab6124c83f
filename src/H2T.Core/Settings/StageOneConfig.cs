namespace H2T.Settings;

/// <summary>Stage I: learn backbone + classifier on the long-tailed set.</summary>
public sealed record StageOneConfig : RunConfig
{
    public StageOneConfig() => Epochs = 30;

    public DataConfig Data { get; init; } = new();
    public string Backbone { get; init; } = "resnet32";
    public string Classifier { get; init; } = "linear";
    /// <summary>Mixup alpha; 0 turns mixup off.</summary>
    public double MixupAlpha { get; init; } = 1.0;
    public string Sampler { get; init; } = "instance";
    /// <summary>CMO: CutMix with minority images from an inverse-frequency sampler (null: off).</summary>
    public CmoConfig? Cmo { get; init; }
    /// <summary>A torch.save file whose weights initialise the backbone (a torchvision state dict, or any layout
    /// <c>h2t import</c> reads); the classifier starts fresh for the dataset's classes. Null: random init.</summary>
    public string? Pretrained { get; init; }
    /// <summary>Backbone modules that train (e.g. ["layer4.2"]); the others are frozen, their BatchNorm in eval mode.
    /// Null: the whole backbone trains. The classifier always trains.</summary>
    public string[]? Trainable { get; init; }
    /// <summary>Which part of the backbone trains (H2T.Models.Tuning): full (default), frozen, bias,
    /// norm, ssf; on a ViT also adaptformer, lora, vpt-shallow, vpt-deep.</summary>
    public TuningKind Tuning { get; init; } = TuningKind.Full;
    /// <summary>The tuning's adapter width, LoRA rank or prompt count; 0: LIFT's default for it.</summary>
    public int TuningDim { get; init; }
    /// <summary>The classifier's start: "random", or "class-mean" (LIFT's: each class's weight is the unit mean of
    /// its training images' features, computed once before the first epoch).</summary>
    public string HeadInit { get; init; } = "random";
    /// <summary>The factor on a cosine classifier's cosines; null: 25 (LIFT's) unless the loss scales them itself
    /// (LDAM's family), then 1.</summary>
    public double? CosineScale { get; init; }

    internal override void ValidateStageValues()
    {
        Data.ValidateValues();
        if (Tuning != TuningKind.Full && Trainable is not null) throw new ConfigException(
            $"tuning {TuningNames.Name(Tuning)} and trainable are exclusive: trainable picks whole modules " +
            "of a full fine-tune", "tuning");
        if (TuningDim < 0) throw new ConfigException($"tuning_dim must be >= 0, got {TuningDim}", "tuning_dim");
        if (HeadInit is not ("random" or "class-mean")) throw new ConfigException(
            $"head_init '{HeadInit}': expected random or class-mean", "head_init");
        if (CosineScale is { } cs && !(cs > 0)) throw new ConfigException(
            $"cosine_scale must be > 0, got {cs}", "cosine_scale");
        if (Trainable is { Length: 0 }) throw new ConfigException(
            "trainable: name at least one backbone module (or leave it out to train the whole backbone)", "trainable");
        if (!(MixupAlpha >= 0)) throw new ConfigException($"mixup alpha must be >= 0, got {MixupAlpha}", "alpha");
        if (Cmo is { } cmo)
        {
            cmo.Validate();
            if (MixupAlpha > 0 &&
                cmo.Probability > 0) throw new ConfigException(
                "cmo and mixup are exclusive: set mixup alpha 0 with CMO (its CutMix replaces mixup)", "cmo.prob");
        }
    }
}
