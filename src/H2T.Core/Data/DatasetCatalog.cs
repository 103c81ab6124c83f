using H2T.Settings;

namespace H2T.Data;

/// <summary>What a dataset load returns: long-tailed train split, balanced test split and their metadata.</summary>
public sealed record DatasetSplits
{
    public required string Name { get; init; }
    public required IImageSource Train { get; init; }
    public required IImageSource Test { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }
    public required Normalization Norm { get; init; }
    public int NumClasses => ClassNames.Count;
    /// <summary>Training images per class after the long-tail construction (losses and samplers need it).</summary>
    public required int[] TrainClassCounts { get; init; }
    /// <summary>Balanced validation images (never test images), or null without <see
    /// cref="DataConfig.ValidationPerClass"/>.</summary>
    public IImageSource? Validation { get; init; }
    /// <summary>How the validation split was made, or null.</summary>
    public ValidationSplit? ValidationSplit { get; init; }
    public int[] TestClassCounts => CountPerClass(Test.Labels, NumClasses);
    public required ClassGroups Groups { get; init; }
    /// <summary>The config these splits were loaded from (set by <see cref="DatasetCatalog.Load"/>).</summary>
    public DataConfig? Config { get; init; }
    /// <summary>The dataset's default training augmentation.</summary>
    public required AugmentConfig TrainAugment { get; init; }
    /// <summary>How a test image file becomes the model's input (default: decode at the test split's size).</summary>
    public DecodePlan TestPlan { get => testPlan ?? new DecodePlan(Test.Shape); init => testPlan = value; }
    readonly DecodePlan? testPlan;

    public static int[] CountPerClass(IReadOnlyList<int> labels, int numClasses)
    {
        var counts = new int[numClasses];
        foreach (var y in labels) counts[y]++;
        return counts;
    }
}

/// <summary>The datasets <c>h2t</c> knows, by name, as one explicit table.</summary>
public static class DatasetCatalog
{
    public const string FashionMnistDefaultPath = "/usr/share/datasets/fashion-mnist";

    static readonly string[] FashionClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    // Large-image list-file sets: (train list, test list, classes). Long-tailed already; no subsampling.
    static readonly Dictionary<string, (string Train, string Test, int Classes)> ListSets = new()
    {
        ["imagenet-lt"] = ("ImageNet_LT_train.txt", "ImageNet_LT_test.txt", 1000),
        ["places-lt"] = ("Places_LT_train.txt", "Places_LT_test.txt", 365),
        ["inat2018"] = ("iNaturalist18_train.txt", "iNaturalist18_val.txt", 8142),
    };

    public static IReadOnlyList<string> Names { get; } =
        ["fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "cifar10-jpg", "imagenet-lt", "places-lt",
            "inat2018", "manifest"];

    /// <summary>Dataset names and the reference configs' spellings of them (ImageNet_LT, Places_LT, iNaturalist18,
    /// cifar-10 ...), for --dataset and the dataset key alike.</summary>
    public static NameTable<string> Aliases { get; } = new("dataset",
    [
        .. Names.Select(n => (n, n)),
        ("cifar-10", "cifar10"), ("cifar-100", "cifar100"), ("fashion_mnist", "fashion-mnist"), ("fashionmnist",
            "fashion-mnist"),
        ("ImageNet_LT", "imagenet-lt"), ("imagenet", "imagenet-lt"), ("Places_LT", "places-lt"), ("places",
            "places-lt"),
        ("iNaturalist18", "inat2018"), ("ina2018", "inat2018"), ("inat", "inat2018"),
    ], "one of fashion-mnist, mnist, cifar10, cifar100, imagefolder, cifar10-jpg, imagenet-lt, places-lt, inat2018, " +
        "manifest " +
        "(or the reference's cifar10, cifar100, ImageNet_LT, Places_LT, iNaturalist18)");

    /// <summary>What <see cref="DataConfig.DataPath"/> means for each dataset (CLI help, error messages).</summary>
    public static string PathHint(string name) => name switch
    {
        "fashion-mnist" =>
            $"folder with {{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz] (default {FashionMnistDefaultPath})",
        "mnist" => "folder with the MNIST {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] files",
        "cifar10" => "cifar-10-batches-bin folder or cifar-10-binary.tar.gz",
        "cifar100" => "cifar-100-binary folder or cifar-100-binary.tar.gz",
        "imagefolder" => "root with train/<class>/*.jpg|png and test/<class>/*",
        "cifar10-jpg" => "cifar10-jpg.tar.gz (extracted once into a cache) or its extracted root",
        _ when ListSets.TryGetValue(name, out var l) => $"image root holding {l.Train} and {l.Test}",
        "manifest" => "folder with classes.csv, train.csv, val.csv and test.csv (a fit's split: FitSplitResult.Write)",
        _ => "?",
    };

    public static DatasetSplits Load(DataConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.ImageSize < 8) throw new ArgumentOutOfRangeException(nameof(config), config.ImageSize,
            "image size must be >= 8");
        var name = config.Dataset.Trim().ToLowerInvariant();
        if (config.Resize != 0 && (config.Resize < 8 || name is not ("imagefolder" or "cifar10-jpg" or "manifest")))
            throw new ArgumentException(
                $"resize {config.Resize}: expected 0 (native size) or a size >= 8, for image-folder sets " +
                $"(imagefolder, cifar10-jpg, manifest); {name} is not one");
        var splits = name switch
        {
            "fashion-mnist" => LongTailed(name, IdxSplits(RequirePath(config, name, FashionMnistDefaultPath)),
                FashionClasses,
                Normalization.FashionMnist, AugmentConfig.CropFlip, config),
            "mnist" => LongTailed(name, IdxSplits(RequirePath(config, name, null)), [.. Enumerable.Range(0,
                10).Select(d => d.ToString(System.Globalization.CultureInfo.InvariantCulture))],
                Normalization.Mnist, new AugmentConfig(RandomCrop: true, Padding: 4), config), // digits: no flips
            "cifar10" => LongTailed(name, Cifar.Load(RequirePath(config, name, null), hundred: false),
                Cifar.Cifar10Classes,
                Normalization.Cifar, AugmentConfig.CropFlip, config),
            "cifar100" => LongTailed(name, Cifar.Load(RequirePath(config, name, null), hundred: true),
                [.. Enumerable.Range(0, 100).Select(c => $"class {c}")], Normalization.Cifar, AugmentConfig.CropFlip,
                    config),
            "imagefolder" => Folder(name, RequirePath(config, name, null), Normalization.ImageNet, config),
            "cifar10-jpg" => Folder(name, RequirePath(config, name, null), Normalization.Cifar, config),
            _ when ListSets.ContainsKey(name) => Listed(name, RequirePath(config, name, null), config),
            "manifest" => FromManifest(name, RequirePath(config, name, null), config),
            _ => throw new ArgumentException(
                $"unknown dataset '{config.Dataset}': expected one of {string.Join(", ", Names)}"),
        };
        if (config.Mean is not null || config.Std is not null)
        {
            int channels = splits.Train.Shape.Channels;
            if (config.Mean?.Length != channels || config.Std?.Length != channels || config.Std.Any(v => !(v > 0)))
                throw new ArgumentException(
                    $"normalisation mean / std: expected {channels} value(s) each (std > 0) for {name}'s " +
                    $"{channels}-channel images");
            splits = splits with { Norm = new Normalization(config.Mean, config.Std) };
        }
        return splits with { Config = config };
    }

    static string RequirePath(DataConfig config, string name, string? fallback)
    {
        var path = config.DataPath ?? fallback
            ?? throw new ArgumentException($"dataset {name} needs a data path: {PathHint(name)}");
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"{path}: not found (dataset {name}: {PathHint(name)})", path);
        return path;
    }

    static (InMemoryImageSource, InMemoryImageSource) IdxSplits(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: expected a folder with IDX files");
        string Find(string stem)
        {
            foreach (var candidate in new[] { stem + ".gz", stem })
                if (File.Exists(Path.Combine(dir, candidate))) return Path.Combine(dir, candidate);
            throw new FileNotFoundException($"{Path.Combine(dir, stem)}[.gz]: IDX file not found", Path.Combine(dir,
                stem));
        }
        var train = Idx.Load(Find("train-images-idx3-ubyte"), Find("train-labels-idx1-ubyte"), 10);
        var test = Idx.Load(Find("t10k-images-idx3-ubyte"), Find("t10k-labels-idx1-ubyte"), 10);
        if (train.Shape != test.Shape) throw new DataFormatException(
            $"{dir}: train images are {train.Shape}, test images {test.Shape}");
        return (train, test);
    }

    /// <summary>Applies the long-tail construction to a balanced training split; the test split stays
    /// untouched.</summary>
    static DatasetSplits LongTailed(string name, (IImageSource Train, IImageSource Test) splits, string[] classNames,
        Normalization norm, AugmentConfig augment, DataConfig config)
    {
        int numClasses = classNames.Length;
        var available = DatasetSplits.CountPerClass(splits.Train.Labels, numClasses);
        var counts = LongTail.Counts(available.Max(), numClasses, config.ImbFactor, config.ImbType);
        var selected = LongTail.SelectIndices(splits.Train.Labels, counts, config.LongTailSeed);
        if (config.ValidationPerClass < 0)
            throw new ArgumentException($"validation images per class must be >= 0, got {config.ValidationPerClass}");
        var split = config.ValidationPerClass > 0
            ? ValidationSplit.Build(splits.Train.Labels, selected, numClasses, config.ValidationPerClass,
                config.LongTailSeed)
            : null;
        var train = new SubsetImageSource(splits.Train, split?.Train ?? selected);
        var trainCounts = DatasetSplits.CountPerClass(train.Labels, numClasses);
        CheckNoEmptyClass(name, classNames, trainCounts, splits.Train, config);
        return new DatasetSplits
        {
            Name = name, Train = train, Test = splits.Test, ClassNames = classNames, Norm = norm,
            TrainClassCounts = trainCounts, Groups = Groups(config, trainCounts), TrainAugment = augment,
            Validation = split is null ? null : new SubsetImageSource(splits.Train, split.Validation),
                ValidationSplit = split,
        };
    }

    static void CheckNoEmptyClass(string name, string[] classNames, int[] trainCounts, IImageSource source,
        DataConfig config)
    {
        for (int c = 0; c < trainCounts.Length; c++)
        {
            if (trainCounts[c] > 0) continue;
            var why = DatasetSplits.CountPerClass(source.Labels, trainCounts.Length)[c] == 0
                ? "the training data has no image of it"
                : $"imbalance factor {config.ImbFactor} ({config.ImbType}) leaves none";
            throw new DataFormatException(
                $"{name}: class {c} '{classNames[c]}' ends up with zero training images: {why}");
        }
    }

    static ClassGroups Groups(DataConfig config, int[] trainCounts)
    {
        if (config.Groups is null) return ClassGroups.Default(trainCounts);
        if (config.Groups.NumClasses != trainCounts.Length)
            throw new ArgumentException(
                $"class groups cover {config.Groups.NumClasses} classes; the dataset has {trainCounts.Length}");
        return config.Groups;
    }

    static DatasetSplits Folder(string name, string path, Normalization norm, DataConfig config)
    {
        var root = File.Exists(path) ? ImageFolder.ExtractCached(path) : path;
        foreach (var split in new[] { "train", "test" })
            if (!Directory.Exists(Path.Combine(root, split)))
                throw new DirectoryNotFoundException(
                    $"{Path.Combine(root, split)}: not found: expected {PathHint(name)}");
        var (trainPaths, trainLabels, classes) = ImageFolder.Scan(Path.Combine(root, "train"));
        var (testPaths, testLabels, _) = ImageFolder.Scan(Path.Combine(root, "test"), classes);
        var (trainPlan, testPlan, augment) = FolderPlans(trainPaths[0], config);
        var full = new FileImageSource(trainPaths, trainLabels, trainPlan);
        var splits = LongTailed(name, (full, new FileImageSource(testPaths, testLabels, testPlan)), classes, norm,
            augment, config);
        // Only the long-tailed subset is decoded, once; sets too large for memory keep decoding per batch.
        return splits with
        {
            TestPlan = testPlan,
            Train = DecodedCache.DecodeIfSmall(splits.Train), Test = DecodedCache.DecodeIfSmall(splits.Test),
            Validation = splits.Validation is { } v ? DecodedCache.DecodeIfSmall(v) : null,
        };
    }

    /// <summary>How an image-file set is decoded, from its first training image: small images (both sides &lt;=
    /// ImageSize) keep their size, CIFAR-style; larger ones get the ImageNet recipe; Resize stretches all.</summary>
    static (DecodePlan Train, DecodePlan Test, AugmentConfig Augment) FolderPlans(string firstImage,
        DataConfig config)
    {
        var (w, h) = ImageDecoder.Probe(firstImage);
        DecodePlan trainPlan, testPlan;
        AugmentConfig augment;
        if (config.Resize > 0)
        {
            // Every image stretched to Resize x Resize (bilinear), then CIFAR's crop with padding of an eighth and
            // flips.
            trainPlan = testPlan = new DecodePlan(new ImageShape(3, config.Resize, config.Resize));
            augment = new AugmentConfig(RandomCrop: true, Padding: Math.Max(1, config.Resize / 8),
                HorizontalFlip: true);
        }
        else if (w <= config.ImageSize && h <= config.ImageSize)
        {
            trainPlan = testPlan = new DecodePlan(new ImageShape(3, h, w));
            augment = new AugmentConfig(RandomCrop: true, Padding: Math.Max(1, Math.Min(w, h) / 8),
                HorizontalFlip: true);
        }
        else (trainPlan, testPlan, augment) = LargeImagePlans(config.ImageSize);
        return (trainPlan, testPlan, augment);
    }

    /// <summary>
    /// A fit's manifest (<see cref="Manifest"/>): train.csv as the training split, as it is (imbalance factor 1:
    /// the user's images are long-tailed already), val.csv as the fixed validation split (<see
    /// cref="DataConfig.ValidationPerClass"/> does not draw another), test.csv; decoded as image folders are, with
    /// ImageNet's normalisation and the groups of classes.csv (unless the config names groups).
    /// </summary>
    static DatasetSplits FromManifest(string name, string dir, DataConfig config)
    {
        if (config.ImbFactor != 1)
            throw new ArgumentException(
                $"{name}: imbalance factor " +
                config.ImbFactor.ToString(System.Globalization.CultureInfo.InvariantCulture) +
                ": expected 1 (imb_factor: 1): a manifest's images are used as they are, nothing is cut");
        var m = Manifest.Read(dir);
        var classes = m.ClassNames.ToArray();
        if (m.Train.Count == 0) throw new DataFormatException($"{Path.Combine(dir, Manifest.TrainFile)}: no images");
        if (m.Test.Count == 0) throw new DataFormatException($"{Path.Combine(dir, Manifest.TestFile)}: no images");
        var (trainPlan, testPlan, augment) = FolderPlans(m.Train.Paths[0], config);
        var train = new FileImageSource(m.Train.Paths, m.Train.Labels, trainPlan);
        var counts = DatasetSplits.CountPerClass(m.Train.Labels, classes.Length);
        CheckNoEmptyClass(name, classes, counts, train, config);
        var groups = config.Groups is null ? m.Groups : Groups(config, counts);
        DatasetSplits splits = new()
        {
            Name = name, Train = DecodedCache.DecodeIfSmall(train),
            Test = DecodedCache.DecodeIfSmall(new FileImageSource(m.Test.Paths, m.Test.Labels, testPlan)),
            ClassNames = classes, Norm = Normalization.ImageNet, TrainClassCounts = counts, Groups = groups,
            TrainAugment = augment, TestPlan = testPlan,
        };
        if (m.Validation.Count == 0) return splits;
        int nTrain = m.Train.Count, nVal = m.Validation.Count;
        // Validation images are decoded as test images are: they stand in for the test split when choosing.
        return splits with
        {
            Validation = DecodedCache.DecodeIfSmall(new FileImageSource(m.Validation.Paths, m.Validation.Labels,
                testPlan)),
            ValidationSplit = new ValidationSplit([.. Enumerable.Range(0, nTrain)],
                [.. Enumerable.Range(nTrain, nVal)], new int[classes.Length], new int[classes.Length])
            {
                Origin = $"the manifest's {Manifest.ValidationFile} (fixed)",
            },
        };
    }

    /// <summary>ImageNet recipe. Test: resize 256 (for 224) + center-crop 224. Train: the source decodes a
    /// 256-square (shorter side 256, center crop) and the loader's random-resized-crop resamples it to 224; the
    /// fixed intermediate size lets whole batches be cropped in one batched op.</summary>
    static (DecodePlan Train, DecodePlan Test, AugmentConfig Augment) LargeImagePlans(int size)
    {
        int resize = (int)Math.Round(size * 256.0 / 224.0);
        return (new DecodePlan(new ImageShape(3, resize, resize), resize),
            new DecodePlan(new ImageShape(3, size, size), resize),
            new AugmentConfig(HorizontalFlip: true, RandomResizedCrop: true, OutputSize: size));
    }

    static DatasetSplits Listed(string name, string root, DataConfig config)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: expected {PathHint(name)}");
        var set = ListSets[name];
        if (config.ValidationPerClass > 0)
            throw new ArgumentException(
                $"{name}: a validation split is built only for long-tailed versions of balanced sets; " +
                                        "list-file sets ship their own validation list (pass it as the test list)");
        var (trainPlan, testPlan, augment) = LargeImagePlans(config.ImageSize);
        var (trp, trl, tro) = ListFile.Read(Path.Combine(root, set.Train), root, set.Classes);
        var (tep, tel, teo) = ListFile.Read(Path.Combine(root, set.Test), root, set.Classes);
        var train = new FileImageSource(trp, trl, trainPlan, tro);
        var counts = DatasetSplits.CountPerClass(trl, set.Classes);
        var classNames = Enumerable.Range(0, set.Classes).Select(c => $"class {c}").ToArray();
        CheckNoEmptyClass(name, classNames, counts, train, config);
        return new DatasetSplits
        {
            Name = name, Train = train, Test = new FileImageSource(tep, tel, testPlan, teo), ClassNames = classNames,
            Norm = Normalization.ImageNet, TrainClassCounts = counts, Groups = Groups(config, counts),
                TrainAugment = augment,
            TestPlan = testPlan,
        };
    }
}
