using H2T.Cli;
using H2T.Data;
using H2T.Settings;
using Spectre.Console.Testing;

namespace H2T.Tests.Data;

public sealed class DatasetCatalogTests
{
    [Fact]
    public void FashionMnistIsTheDefaultAndComesOutLongTailedWithAnUntouchedTestSet()
    {
        var s = DatasetCatalog.Load(new DataConfig());
        Assert.Equal("fashion-mnist", s.Name);
        Assert.Equal([6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60], s.TrainClassCounts);
        Assert.Equal(14886, s.Train.Count);
        Assert.Equal(10000, s.Test.Count);
        Assert.All(s.TestClassCounts, c => Assert.Equal(1000, c));
        Assert.Equal(new ImageShape(1, 28, 28), s.Train.Shape);
        Assert.Equal([0.2860f], s.Norm.Mean);
        Assert.Equal([0.3530f], s.Norm.Std);
        Assert.Equal([7, 8, 9], s.Groups.Tail);
        Assert.Equal(AugmentConfig.CropFlip, s.TrainAugment);
        Assert.Equal("Ankle boot", s.ClassNames[9]);
        // Train images are the numpy-selected ones, grouped by class.
        var sub = Assert.IsType<SubsetImageSource>(s.Train);
        Assert.Equal(LongTail.SelectIndices(Idx.ReadLabels(
            "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").Select(b => (int)b).ToList(),
            s.TrainClassCounts, 0), sub.SourceIndices);
        var step = DatasetCatalog.Load(new DataConfig(ImbFactor: 10, ImbType: ImbalanceType.Step));
        Assert.Equal(5 * 6000 + 5 * 600, step.Train.Count);
    }

    [Fact]
    public void AClassEndingWithZeroImagesIsAnErrorNamingIt()
    {
        var e = Assert.Throws<DataFormatException>(() => DatasetCatalog.Load(new DataConfig(ImbFactor: 10000)));
        Assert.Contains("class 9 'Ankle boot' ends up with zero training images", e.Message);
    }

    [Fact]
    public void UnknownNamesMissingPathsAndGroupMismatch()
    {
        Assert.Contains("expected one of fashion-mnist",
            Assert.Throws<ArgumentException>(() => DatasetCatalog.Load(new DataConfig("svhn"))).Message);
        Assert.Contains("needs a data path",
            Assert.Throws<ArgumentException>(() => DatasetCatalog.Load(new DataConfig("cifar10"))).Message);
        Assert.Contains("/no/such/dir",
            Assert.Throws<FileNotFoundException>(() => DatasetCatalog.Load(new DataConfig("mnist",
            "/no/such/dir"))).Message);
        Assert.Throws<ArgumentException>(() => DatasetCatalog.Load(new DataConfig(Groups: ClassGroups.FromRanges(100,
            36, 71))));
    }

    [Fact]
    public void Cifar10BinaryGetsTheCifarRecipe()
    {
        using var dir = new TempDir();
        // 10 images per class: exp IF=10 keeps int(10 * 0.1^(i/9)) = 10,7,5,4,3,2,2,1,1,1.
        var labels = Enumerable.Range(0, 100).Select(i => i % 10).ToArray();
        foreach (var f in new[] { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
            "data_batch_5.bin" })
            dir.Write(f, DataTestFiles.CifarRecords(f == "data_batch_1.bin" ? labels : [0], false));
        dir.Write("test_batch.bin", DataTestFiles.CifarRecords(labels, false));
        var s = DatasetCatalog.Load(new DataConfig("cifar10", dir.Path, ImbFactor: 10));
        Assert.Equal(LongTail.Counts(14, 10, 10, ImbalanceType.Exp), s.TrainClassCounts); // class 0 has 10 + 4 images
        Assert.Equal(100, s.Test.Count);
        Assert.Equal(Normalization.Cifar, s.Norm);
        Assert.Equal("airplane", s.ClassNames[0]);
    }

    [Fact]
    public void ImageFolderOfRealCifarJpegsAndTheLargeImageRecipe()
    {
        using var dir = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(dir.Path, perClass: 3);
        var s = DatasetCatalog.Load(new DataConfig("cifar10-jpg", dir.Path, ImbFactor: 3));
        Assert.Equal([3, 2, 2, 2, 1, 1, 1, 1, 1, 1], s.TrainClassCounts);
        Assert.Equal(30, s.Test.Count);
        Assert.Equal(new ImageShape(3, 32, 32), s.Train.Shape);
        Assert.Equal(Normalization.Cifar, s.Norm);
        using var loader = new BatchLoader(s.Train, Samplers.Instance(s.Train.Labels, 0), 8, s.Norm, s.TrainAugment, 0);
        Assert.Equal(new long[] { 8, 3, 32, 32 },
            loader.Epoch(0).Select(b => { using (b) return b.Images.shape; }).First());

        // Large images: train decodes a 256 square for random-resized-crop 224, test resize 256 + center crop 224.
        using var big = new TempDir();
        foreach (var split in new[] { "train", "test" })
            foreach (var cls in new[] { "a", "b" })
                big.Write($"{split}/{cls}/0.png", DataTestFiles.Image(300, 260, 9, 9, 9));
        var b = DatasetCatalog.Load(new DataConfig("imagefolder", big.Path, ImbFactor: 1));
        Assert.Equal(new ImageShape(3, 256, 256), b.Train.Shape);
        Assert.Equal(new ImageShape(3, 224, 224), b.Test.Shape);
        Assert.True(b.TrainAugment.RandomResizedCrop);
        Assert.Equal(224, b.TrainAugment.OutputSize);
    }

    [Fact]
    public void SmallImageFilesAreDecodedOnceAtLoadWithTheSameBytesAndABrokenFileFailsThere()
    {
        using var dir = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(dir.Path, perClass: 3);
        var s = DatasetCatalog.Load(new DataConfig("cifar10-jpg", dir.Path, ImbFactor: 3));
        Assert.IsType<InMemoryImageSource>(s.Train);
        Assert.IsType<InMemoryImageSource>(s.Test);
        // The cache holds exactly what decoding each file gives, in the same order, with the same descriptions.
        var (paths, labels, _) = ImageFolder.Scan(Path.Combine(dir.Path, "test"));
        var lazy = new FileImageSource(paths, labels, new DecodePlan(s.Test.Shape));
        Assert.Same(s.Test, DecodedCache.DecodeIfSmall(s.Test));
        Assert.Same(lazy, DecodedCache.DecodeIfSmall(lazy, budgetBytes: 1000)); // over budget: stays lazy
        var want = new byte[lazy.Shape.Size];
        var got = new byte[lazy.Shape.Size];
        for (int i = 0; i < lazy.Count; i++)
        {
            lazy.ReadInto(i, want);
            s.Test.ReadInto(i, got);
            Assert.Equal(want, got);
            Assert.Equal(lazy.Describe(i), s.Test.Describe(i));
        }
        Assert.Equal(lazy.Labels, s.Test.Labels);
        // A truncated JPEG is reported when the set loads, with its file name.
        var victim = paths[5];
        File.WriteAllBytes(victim, File.ReadAllBytes(victim)[..40]);
        var e = Assert.ThrowsAny<Exception>(() => DatasetCatalog.Load(new DataConfig("cifar10-jpg", dir.Path,
            ImbFactor: 3)));
        Assert.IsNotType<AggregateException>(e);
        Assert.Contains(Path.GetFileName(victim), e.Message);
    }

    [Fact]
    public void ListFileSetsReadTheirSplitFiles()
    {
        using var dir = new TempDir();
        var lines = string.Join("\n", Enumerable.Range(0, 365).Select(c => $"img/{c}.png {c}"));
        dir.Write("Places_LT_train.txt", System.Text.Encoding.ASCII.GetBytes(lines + "\nimg/0.png 0\n"));
        dir.Write("Places_LT_test.txt", System.Text.Encoding.ASCII.GetBytes(lines));
        dir.Write("img/0.png", DataTestFiles.Image(50, 40, 1, 2, 3));
        var s = DatasetCatalog.Load(new DataConfig("places-lt", dir.Path, ImageSize: 32));
        Assert.Equal(366, s.Train.Count);
        Assert.Equal(2, s.TrainClassCounts[0]);
        // Every class has fewer than 20 images, so the count rule would leave head and medium empty: by rank, 30%
        // head (class 0, with 2 images, first), 30% tail.
        Assert.Equal(110, s.Groups.Tail.Length);
        Assert.Equal(110, s.Groups.Head.Length);
        Assert.Contains(0, s.Groups.Head);
        Assert.Equal(new ImageShape(3, 32, 32), s.Test.Shape);
        var buf = new byte[s.Test.Shape.Size];
        s.Test.ReadInto(0, buf);
        Assert.Equal(1, buf[0]);
        Assert.Contains("Places_LT_test.txt line 2", Assert.Throws<FileNotFoundException>(() => s.Test.ReadInto(1,
            buf)).Message);
    }
}

public sealed class DataCommandTests
{
    [Fact]
    public void PrintsPerClassCountsGroupsAndTotalsForTrainAndTest()
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["data"], console);
        Assert.Equal(0, rc);
        Assert.Matches(@"9\s+Ankle boot\s+tail\s+60\s+1000", console.Output);
        Assert.Matches(@"0\s+T-shirt/top\s+head\s+6000\s+1000", console.Output);
        Assert.Matches(@"total\s+14886\s+10000", console.Output);
        Assert.Contains("tail: 3 classes, 326 train / 3000 test images", console.Output);
    }

    [Fact]
    public void StepProfileFromOptions()
    {
        var console = new TestConsole().Width(200);
        Assert.Equal(0, CliApp.Run(["data", "--dataset", "fashion-mnist", "--data", "/usr/share/datasets/fashion-mnist",
            "--imb-factor", "10", "--imb-type", "step"], console));
        Assert.Matches(@"total\s+33000\s+10000", console.Output);
    }

    [Theory]
    [InlineData("--imb-type", "linear", "--imb-type linear")]
    [InlineData("--imb-factor", "-2", "--imb-factor -2")]
    [InlineData("--dataset", "svhn", "--dataset svhn")]
    [InlineData("--data", "/no/such/place", "/no/such/place")]
    [InlineData("--imb-factor", "100000", "ends up with zero training images")]
    public void BadOptionsAndPathsExitWithTwo(string option, string value, string expected)
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["data", option, value], console);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains(expected, console.Output);
    }

    [Fact]
    public void AMalformedFileIsNamedInTheMessage()
    {
        using var dir = new TempDir();
        foreach (var f in new[] { "train-images-idx3-ubyte", "t10k-images-idx3-ubyte" }) dir.Write(f,
            DataTestFiles.IdxImages(10, 4, 4));
        dir.Write("t10k-labels-idx1-ubyte", DataTestFiles.IdxLabels([.. Enumerable.Range(0, 10).Select(i => (byte)i)]));
        var bad = dir.Write("train-labels-idx1-ubyte", DataTestFiles.IdxLabels([.. Enumerable.Range(0,
            10).Select(i => (byte)i)])[..12]);
        var console = new TestConsole().Width(300);
        Assert.Equal(CliApp.UsageError, CliApp.Run(["data", "--dataset", "mnist", "--data", dir.Path], console));
        Assert.Contains("train-labels-idx1-ubyte: truncated at byte offset 12", console.Output);
    }
}
