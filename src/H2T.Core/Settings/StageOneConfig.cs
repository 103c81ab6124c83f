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

    internal override void ValidateStageValues()
    {
        Data.ValidateValues();
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
