using System.ComponentModel;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>
/// Dataset flags shared by stage1, import and data. Like every setting flag they are declared here for --help and
/// parsing only: their values are bound from the command line by the one binder (<see cref="ConfigSupport.Bind"/>),
/// each as its config key, with its default in the Settings record. So the properties are never read.
/// </summary>
public class DataOptions : GlobalSettings
{
    [CommandOption("--dataset <NAME>")]
    [Description("fashion-mnist (default), mnist, cifar10, cifar100, cifar10-jpg, imagefolder, imagenet-lt, places-lt, inat2018 [[dataset]]")]
    public string? Dataset { get; init; }

    [CommandOption("--data <PATH>")]
    [Description("dataset files; without it, the dataset's standard location [[data_path]]")]
    public string? DataPath { get; init; }

    [CommandOption("--imb-factor <F>")]
    [Description("imbalance factor n_max / n_min of the long-tailed training set (1 = balanced; default 100) [[imb_factor]]")]
    public string? ImbFactor { get; init; }

    [CommandOption("--imb-type <TYPE>")]
    [Description("exp (default) or step [[imb_type]]")]
    public string? ImbType { get; init; }

    [CommandOption("--lt-seed <N>")]
    [Description("seed of the long-tail subset (0 as in every reference codebase) [[lt_seed]]")]
    public string? LongTailSeed { get; init; }

    [CommandOption("--val-per-class <N>")]
    [Description("balanced validation images per class, from images the long-tail cut left unused (0: none, the reference's setting) [[val_per_class]]")]
    public string? ValidationPerClass { get; init; }

    [CommandOption("--image-size <N>")]
    [Description("crop size of large-image sets (ImageNet-LT, Places-LT, iNaturalist, image folders with images larger than it; default 224): test images are resized to N*256/224 and center-cropped [[image_size]]")]
    public string? ImageSize { get; init; }

    [CommandOption("--resize <N>")]
    [Description("decode every image of a folder set (imagefolder, cifar10-jpg) at N x N, small images upsampled (bilinear), e.g. 32-px CIFAR at 112 for a pretrained ImageNet network; 0 (default): native size [[resize]]")]
    public string? Resize { get; init; }
}
