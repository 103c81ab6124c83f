using System.ComponentModel;
using H2T.Data;
using H2T.Settings;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>Dataset options shared by the training commands.</summary>
public class DataOptions : GlobalSettings
{
    [CommandOption("--dataset <NAME>")]
    [Description("fashion-mnist (default), mnist, cifar10, cifar100, cifar10-jpg, imagefolder, imagenet-lt, places-lt, inat2018")]
    [DefaultValue("fashion-mnist")]
    public string Dataset { get; init; } = "fashion-mnist";

    [CommandOption("--data <PATH>")]
    [Description("dataset files (default: the dataset's standard location)")]
    public string? DataPath { get; init; }

    [CommandOption("--imb-factor <F>")]
    [Description("imbalance factor n_max / n_min of the long-tailed training set (1 = balanced)")]
    [DefaultValue(100.0)]
    public double ImbFactor { get; init; } = 100;

    [CommandOption("--imb-type <TYPE>")]
    [Description("exp or step")]
    [DefaultValue("exp")]
    public string ImbType { get; init; } = "exp";

    [CommandOption("--lt-seed <N>")]
    [Description("seed of the long-tail subset (0 as in every reference codebase)")]
    [DefaultValue(0)]
    public int LongTailSeed { get; init; }

    [CommandOption("--val-per-class <N>")]
    [Description("balanced validation images per class, from images the long-tail cut left unused (0: none, the reference's setting)")]
    [DefaultValue(0)]
    public int ValidationPerClass { get; init; }

    [CommandOption("--image-size <N>")]
    [Description("crop size of large-image sets (ImageNet-LT, Places-LT, iNaturalist, image folders with images larger than it): test images are resized to N*256/224 and center-cropped")]
    [DefaultValue(224)]
    public int ImageSize { get; init; } = 224;

    [CommandOption("--resize <N>")]
    [Description("decode every image of a folder set (imagefolder, cifar10-jpg) at N x N, small images upsampled (bilinear), e.g. 32-px CIFAR at 112 for a pretrained ImageNet network; 0: native size")]
    [DefaultValue(0)]
    public int Resize { get; init; }

    public DataConfig ToDataConfig() => new(
        Dataset: DatasetCatalog.Aliases.Parse(Dataset),
        DataPath: DataPath,
        ImbFactor: ImbFactor,
        ImbType: ImbalanceTypes.Table.Parse(ImbType),
        LongTailSeed: LongTailSeed,
        ValidationPerClass: ValidationPerClass,
        ImageSize: ImageSize,
        Resize: Resize);

    public override Spectre.Console.ValidationResult Validate()
    {
        if (!DatasetCatalog.Aliases.TryParse(Dataset, out _))
            return Spectre.Console.ValidationResult.Error($"--dataset {Dataset}: expected {DatasetCatalog.Aliases.Expected}");
        if (!(ImbFactor >= 1) || double.IsInfinity(ImbFactor))
            return Spectre.Console.ValidationResult.Error($"--imb-factor {ImbFactor.ToString(System.Globalization.CultureInfo.InvariantCulture)}: expected a number >= 1");
        if (!ImbalanceTypes.Table.TryParse(ImbType, out _)) return Spectre.Console.ValidationResult.Error($"--imb-type {ImbType}: expected {ImbalanceTypes.Table.Expected}");
        if (ValidationPerClass < 0) return Spectre.Console.ValidationResult.Error($"--val-per-class {ValidationPerClass}: expected a whole number >= 0");
        if (ImageSize < 8) return Spectre.Console.ValidationResult.Error($"--image-size {ImageSize}: expected a whole number >= 8");
        if (Resize is not 0 and < 8) return Spectre.Console.ValidationResult.Error($"--resize {Resize}: expected 0 (native size) or a whole number >= 8");
        if (LongTailSeed < 0) return Spectre.Console.ValidationResult.Error($"--lt-seed {LongTailSeed}: expected a whole number >= 0");
        return base.Validate();
    }
}
