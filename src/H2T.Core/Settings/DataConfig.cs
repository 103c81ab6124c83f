namespace H2T.Settings;

/// <summary>Options that select and shape a dataset. <see cref="ImbFactor"/> and <see cref="ImbType"/> apply to the
/// balanced sets (MNIST, Fashion-MNIST, CIFAR, image folders); the list-file sets are long-tailed already.
/// <see cref="ImageSize"/> is the crop size for large-image sets (ImageNet-LT style). <see cref="ValidationPerClass"/>
/// &gt; 0 builds a balanced validation split (Data.ValidationSplit); 0 keeps the reference's training set.</summary>
public sealed record DataConfig(string Dataset = "fashion-mnist", string? DataPath = null, double ImbFactor = 100,
    ImbalanceType ImbType = ImbalanceType.Exp, int LongTailSeed = 0, int ImageSize = 224, ClassGroups? Groups = null,
    int ValidationPerClass = 0, int Resize = 0, float[]? Mean = null, float[]? Std = null)
{
    // Resize > 0: every image of a folder set is decoded at Resize x Resize (small images upsampled, bilinear), so a
    // pretrained ImageNet network sees objects at a scale it knows. Mean / Std (x in [0, 1], per channel) replace the
    // dataset's normalisation: a pretrained network's own, recorded in checkpoints with the rest of this config.

    /// <summary>This config with <see cref="DataPath"/> made absolute, as checkpoints store it: a later stage started
    /// from another folder then still finds the data.</summary>
    public void ValidateValues()
    {
        if (!(ImbFactor >= 1) || double.IsInfinity(ImbFactor))
            throw new ConfigException(
                $"imbalance factor n_max / n_min must be a number >= 1 (or its inverse, 0.01 for 100), got {ImbFactor}",
                "imb_factor");
        if (LongTailSeed < 0) throw new ConfigException($"lt_seed must be >= 0, got {LongTailSeed}", "lt_seed");
        if (ValidationPerClass < 0) throw new ConfigException($"val_per_class must be >= 0, got {ValidationPerClass}",
            "val_per_class");
        if (ImageSize < 8) throw new ConfigException($"image_size must be a crop size >= 8, got {ImageSize}",
            "image_size");
        if (Resize is not 0 and
            < 8) throw new ConfigException($"resize must be 0 (native size) or a size >= 8, got {Resize}", "resize");
    }

    public DataConfig WithAbsolutePath() => DataPath is null ? this : this with { DataPath =
        Path.GetFullPath(DataPath) };
}

public enum ImbalanceType { Exp, Step }

/// <summary>The names of the long-tail profiles, for flags and config keys alike.</summary>
public static class ImbalanceTypes
{
    public static NameTable<ImbalanceType> Table { get; } = new("imbalance type", [("exp", ImbalanceType.Exp), ("step",
        ImbalanceType.Step)]);
}
