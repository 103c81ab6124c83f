using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>
/// Dataset flags shared by stage1, import and data. Like every setting flag, each is its config key: the value
/// Spectre parsed is bound by the one binder (<see cref="ConfigSupport.Bind"/>, which reads these properties), with
/// its default in the Settings record. The commands read the bound config, not the properties.
/// </summary>
public class DataOptions : ComputeSettings
{
    /// <summary>--precision (declared once, by <see cref="ComputeSettings"/>) is the config key precision
    /// here.</summary>
    protected override bool BindsConfig => true;

    /// <summary>Whether the command runs a backbone (stage1); data and import only read data and weights.</summary>
    protected virtual bool TrainsABackbone => false;

    public override ValidationResult Validate() =>
        Precision is not null && !TrainsABackbone
            ? ValidationResult.Error($"--precision {Precision}: this command runs no backbone")
            : base.Validate();

    [CommandOption("--dataset <NAME>")]
    [Description(
        "fashion-mnist (default), mnist, cifar10, cifar100, cifar10-jpg, imagefolder, imagenet-lt, places-lt, " +
        "inat2018, manifest (a fit's data/ folder) [[dataset]]")]
    public string? Dataset { get; init; }

    [CommandOption("--data <PATH>")]
    [Description("dataset files; without it, the dataset's standard location [[data_path]]")]
    public string? DataPath { get; init; }

    [CommandOption("--imb-factor <F>")]
    [Description(
        "imbalance factor n_max / n_min of the long-tailed training set (1 = balanced; default 100) [[imb_factor]]")]
    public string? ImbFactor { get; init; }

    [CommandOption("--imb-type <TYPE>")]
    [Description("exp (default) or step [[imb_type]]")]
    public string? ImbType { get; init; }

    [CommandOption("--lt-seed <N>")]
    [Description("seed of the long-tail subset (0 as in every reference codebase) [[lt_seed]]")]
    public string? LongTailSeed { get; init; }

    [CommandOption("--val-per-class <N>")]
    [Description(
        "balanced validation images per class, from images the long-tail cut left unused (0: none, the reference's " +
        "setting) [[val_per_class]]")]
    public string? ValidationPerClass { get; init; }

    [CommandOption("--image-size <N>")]
    [Description(
        "crop size of large-image sets (ImageNet-LT, Places-LT, iNaturalist, image folders with images larger than " +
        "it; default 224): test images are resized to N*256/224 and center-cropped [[image_size]]")]
    public string? ImageSize { get; init; }

    [CommandOption("--resize <N>")]
    [Description(
        "decode every image of a folder set (imagefolder, cifar10-jpg, manifest) at N x N, small images upsampled " +
        "(bilinear), e.g. 32-px CIFAR at 112 for a pretrained ImageNet network; 0 (default): native size [[resize]]")]
    public string? Resize { get; init; }
}
