using H2T.Data;
using SkiaSharp;

namespace H2T.Tests.Data;

public sealed class IdxTests
{
    [Fact]
    public void RealFashionMnistLoadsWithShapesCountsAndLabels()
    {
        var src = Idx.Load("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
            "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", 10);
        Assert.Equal(60000, src.Count);
        Assert.Equal(new ImageShape(1, 28, 28), src.Shape);
        Assert.Equal(9, src.Labels[0]); // the first training image is an ankle boot
        Assert.All(DatasetSplits.CountPerClass(src.Labels, 10), c => Assert.Equal(6000, c));
        Assert.Equal("train-images-idx3-ubyte.gz image 123", src.Describe(123));
    }

    [Fact]
    public void RawAndGzipReadTheSame()
    {
        using var dir = new TempDir();
        var img = DataTestFiles.IdxImages(3, 4, 5);
        var raw = dir.Write("raw-images", img);
        var gz = dir.Write("gz-images.gz", DataTestFiles.Gzip(img));
        var a = Idx.ReadImages(raw);
        var b = Idx.ReadImages(gz);
        Assert.Equal((3, 4, 5), (a.Count, a.Rows, a.Cols));
        Assert.Equal(img[16..], a.Pixels);
        Assert.Equal(a.Pixels, b.Pixels);
    }

    [Fact]
    public void WrongMagicNamesFileOffsetAndExpectation()
    {
        using var dir = new TempDir();
        var p = dir.Write("labels", DataTestFiles.IdxImages(2, 2, 2)); // an image file where labels are expected
        var e = Assert.Throws<DataFormatException>(() => Idx.ReadLabels(p));
        Assert.Contains(p, e.Message);
        Assert.Contains("0x00000803", e.Message);
        Assert.Contains("expected 0x00000801", e.Message);
    }

    [Fact]
    public void TruncatedPayloadGivesFileAndByteOffset()
    {
        using var dir = new TempDir();
        var full = DataTestFiles.IdxImages(4, 3, 3);
        var p = dir.Write("cut.gz", DataTestFiles.Gzip(full[..^5]));
        var e = Assert.Throws<DataFormatException>(() => Idx.ReadImages(p));
        Assert.Contains(p, e.Message);
        Assert.Contains($"truncated at byte offset {full.Length - 5}", e.Message);
        Assert.Contains("4 images of 3x3", e.Message);
    }

    [Fact]
    public void TruncatedHeaderAndBadDimensionAndExtraBytesAreErrors()
    {
        using var dir = new TempDir();
        var header = dir.Write("short", DataTestFiles.IdxImages(1, 2, 2)[..10]);
        Assert.Contains("truncated at byte offset 10",
            Assert.Throws<DataFormatException>(() => Idx.ReadImages(header)).Message);
        var zero = DataTestFiles.IdxImages(1, 2, 2);
        zero[11] = 0; // rows = 0
        var z = dir.Write("zero", zero);
        Assert.Contains("dimension 1 at byte offset 8",
            Assert.Throws<DataFormatException>(() => Idx.ReadImages(z)).Message);
        var extra = dir.Write("extra", [.. DataTestFiles.IdxImages(1, 2, 2), 1, 2]);
        Assert.Contains("2 extra bytes", Assert.Throws<DataFormatException>(() => Idx.ReadImages(extra)).Message);
    }

    [Fact]
    public void CorruptGzipIsAnError()
    {
        using var dir = new TempDir();
        var gz = DataTestFiles.Gzip(DataTestFiles.IdxImages(50, 8, 8));
        for (int i = 12; i < gz.Length - 8; i++) gz[i] ^= 0x5a;
        var p = dir.Write("bad.gz", gz);
        var e = Assert.Throws<DataFormatException>(() => Idx.ReadImages(p));
        Assert.Contains(p, e.Message);
    }

    [Fact]
    public void LabelCountMismatchLabelRangeAndMissingFile()
    {
        using var dir = new TempDir();
        var img = dir.Write("img", DataTestFiles.IdxImages(3, 2, 2));
        var two = dir.Write("two", DataTestFiles.IdxLabels([0, 1]));
        Assert.Contains("2 labels, but", Assert.Throws<DataFormatException>(() => Idx.Load(img, two, 10)).Message);
        var bad = dir.Write("bad", DataTestFiles.IdxLabels([0, 10, 1]));
        var e = Assert.Throws<DataFormatException>(() => Idx.Load(img, bad, 10));
        Assert.Contains("label 10 at byte offset 9 (item 1)", e.Message);
        Assert.Contains("expected 0..9", e.Message);
        var missing = dir.File("nope.gz");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => Idx.ReadImages(missing)).Message);
    }
}

public sealed class CifarTests
{
    static void WriteCifar10(string dir, Func<string, byte[]>? mutate = null)
    {
        foreach (var f in new[] { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
            "data_batch_5.bin", "test_batch.bin" })
        {
            var bytes = DataTestFiles.CifarRecords([1, 9, 0], hundred: false);
            File.WriteAllBytes(Path.Combine(dir, f), mutate?.Invoke(f) ?? bytes);
        }
    }

    [Fact]
    public void Cifar10FolderReadsAllBatchesInOrder()
    {
        using var dir = new TempDir();
        var bin = Directory.CreateDirectory(dir.File("cifar-10-batches-bin")).FullName;
        WriteCifar10(bin);
        var (train, test) = Cifar.Load(dir.Path, hundred: false);
        Assert.Equal(15, train.Count);
        Assert.Equal(3, test.Count);
        Assert.Equal([1, 9, 0], train.Labels.Take(3));
        var px = new byte[3072];
        train.ReadInto(4, px); // record 1 of data_batch_2
        Assert.Equal((byte)(31 + 5), px[5]);
        Assert.Contains("data_batch_2.bin record 1", train.Describe(4));
    }

    [Fact]
    public void Cifar100TarGzUsesFineLabels()
    {
        using var dir = new TempDir();
        var tgz = dir.File("cifar-100-binary.tar.gz");
        DataTestFiles.WriteTarGz(tgz, [("cifar-100-binary/train.bin", DataTestFiles.CifarRecords([57, 3, 99], true)),
            ("cifar-100-binary/test.bin", DataTestFiles.CifarRecords([12], true)), ("cifar-100-binary/meta.txt", [1])]);
        var (train, test) = Cifar.Load(tgz, hundred: true);
        Assert.Equal([57, 3, 99], train.Labels);
        Assert.Equal([12], test.Labels);
        var px = new byte[3072];
        train.ReadInto(2, px);
        Assert.Equal((byte)(2 * 31), px[0]);
    }

    [Fact]
    public void WrongRecordSizeLabelOutOfRangeAndMissingBatch()
    {
        using var dir = new TempDir();
        WriteCifar10(dir.Path, f => f == "data_batch_3.bin" ? DataTestFiles.CifarRecords([1, 2],
            false)[..^100] : DataTestFiles.CifarRecords([1], false));
        var e = Assert.Throws<DataFormatException>(() => Cifar.Load(dir.Path, false));
        Assert.Contains("data_batch_3.bin", e.Message);
        Assert.Contains("3073-byte records", e.Message);

        WriteCifar10(dir.Path, f => f == "test_batch.bin" ? DataTestFiles.CifarRecords([1, 10],
            false) : DataTestFiles.CifarRecords([1], false));
        var l = Assert.Throws<DataFormatException>(() => Cifar.Load(dir.Path, false));
        Assert.Contains("test_batch.bin: label 10 at byte offset 3073 (record 1)", l.Message);

        File.Delete(dir.File("data_batch_5.bin"));
        Assert.Contains("missing data_batch_5.bin", Assert.Throws<DataFormatException>(() => Cifar.Load(dir.Path,
            false)).Message);
        Assert.Throws<FileNotFoundException>(() => Cifar.Load(dir.File("nothing.tar.gz"), false));
    }

    [Fact]
    public void ATarGzThatIsNotOneIsAnError()
    {
        using var dir = new TempDir();
        var p = dir.Write("cifar-10-binary.tar.gz", [1, 2, 3, 4, 5]);
        Assert.Contains(p, Assert.Throws<DataFormatException>(() => Cifar.Load(p, false)).Message);
    }
}

public sealed class ImageFileTests
{
    [Fact]
    public void RealCifarJpegsDecodeToChwBytes()
    {
        using var dir = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(dir.Path, perClass: 2);
        var (paths, labels, classes) = ImageFolder.Scan(Path.Combine(dir.Path, "train"));
        Assert.Equal(Cifar.Cifar10Classes, classes);
        Assert.Equal(20, paths.Length);
        Assert.Equal([0, 0, 1, 1], labels[..4]);
        var src = new FileImageSource(paths, labels, new DecodePlan(new ImageShape(3, 32, 32)));
        var chw = new byte[src.Shape.Size];
        src.ReadInto(0, chw);
        // Compare one pixel with SkiaSharp's own decode of the same file (RGBA -> planar).
        using var bmp = SKBitmap.Decode(paths[0]);
        var c = bmp.GetPixel(7, 5);
        Assert.Equal((c.Red, c.Green, c.Blue), (chw[5 * 32 + 7], chw[1024 + 5 * 32 + 7], chw[2048 + 5 * 32 + 7]));
        Assert.True(chw.Distinct().Count() > 50);
    }

    [Fact]
    public void PngResizeAndShorterSideCenterCrop()
    {
        using var dir = new TempDir();
        var p = dir.Write("a.png", DataTestFiles.Image(40, 20, 10, 200, 30));
        var out1 = new byte[3 * 8 * 8];
        ImageDecoder.Decode(p, new DecodePlan(new ImageShape(3, 8, 8)), out1);
        Assert.All(out1[..64], v => Assert.Equal(10, v));
        Assert.All(out1[64..128], v => Assert.Equal(200, v));
        // Gradient 40x20: shorter side 10 -> 20x10, center crop 10x10 keeps the middle: values near the middle grey.
        var g = dir.Write("g.png", DataTestFiles.Image(40, 20, 0, 0, 0, gradient: true));
        var out2 = new byte[3 * 10 * 10];
        ImageDecoder.Decode(g, new DecodePlan(new ImageShape(3, 10, 10), ResizeShorter: 10), out2);
        Assert.InRange(out2[0], 50, 90);   // left edge of the crop: a quarter across the original
        Assert.InRange(out2[9], 165, 205); // right edge: three quarters across
        var grey = new byte[8 * 8];
        ImageDecoder.Decode(p, new DecodePlan(new ImageShape(1, 8, 8)), grey);
        Assert.All(grey, v => Assert.Equal((299 * 10 + 587 * 200 + 114 * 30 + 500) / 1000, v));
    }

    [Fact]
    public void ImagesThatDoNotDecodeNameTheirFile()
    {
        using var dir = new TempDir();
        var jpg = DataTestFiles.Image(64, 64, 1, 2, 3, SKEncodedImageFormat.Jpeg, gradient: true);
        var truncated = dir.Write("train/a/cut.jpg", jpg[..(jpg.Length / 3)]);
        var garbage = dir.Write("train/a/garbage.png", "not an image at all"u8.ToArray());
        var buf = new byte[3 * 64 * 64];
        var plan = new DecodePlan(new ImageShape(3, 64, 64));
        var e1 = Assert.Throws<DataFormatException>(() => ImageDecoder.Decode(truncated, plan, buf));
        Assert.Contains(truncated, e1.Message);
        var e2 = Assert.Throws<DataFormatException>(() => ImageDecoder.Decode(garbage, plan, buf));
        Assert.Contains(garbage, e2.Message);
        Assert.Contains("expected JPEG or PNG", e2.Message);
        Assert.Throws<FileNotFoundException>(() => ImageDecoder.Decode(dir.File("train/a/none.png"), plan, buf));
    }

    [Fact]
    public void FolderErrors()
    {
        using var dir = new TempDir();
        Assert.Throws<DirectoryNotFoundException>(() => ImageFolder.Scan(dir.File("missing")));
        Directory.CreateDirectory(dir.File("root"));
        Assert.Contains("no class folders",
            Assert.Throws<DataFormatException>(() => ImageFolder.Scan(dir.File("root"))).Message);
        dir.Write("root/cat/1.png", DataTestFiles.Image(4, 4, 1, 1, 1));
        dir.Write("root/dog/readme.txt", [1]);
        var e = Assert.Throws<DataFormatException>(() => ImageFolder.Scan(dir.File("root")));
        Assert.Contains("class 1 'dog' has no .jpg/.jpeg/.png images", e.Message);
        dir.Write("root/dog/2.JPEG", DataTestFiles.Image(4, 4, 1, 1, 1, SKEncodedImageFormat.Jpeg));
        var (paths, labels, classes) = ImageFolder.Scan(dir.File("root"));
        Assert.Equal(["cat", "dog"], classes);
        Assert.Equal([0, 1], labels);
        Assert.Contains("differ from the training classes",
            Assert.Throws<DataFormatException>(() => ImageFolder.Scan(dir.File("root"), ["cat", "emu"])).Message);
    }

    [Fact]
    public void ListFilesParseAndReportLineNumbers()
    {
        using var dir = new TempDir();
        dir.Write("img/a/1.png", DataTestFiles.Image(6, 6, 9, 9, 9));
        var list = dir.Write("train.txt", "img/a/1.png 2\n\nimg/b/missing.png 0\n"u8.ToArray());
        var (paths, labels, origins) = ListFile.Read(list, dir.Path, 3);
        Assert.Equal([2, 0], labels);
        Assert.Equal("train.txt line 3", origins[1]);
        var src = new FileImageSource(paths, labels, new DecodePlan(new ImageShape(3, 6, 6)), origins);
        var miss = Assert.Throws<FileNotFoundException>(() => src.ReadInto(1, new byte[108]));
        Assert.Contains("train.txt line 3", miss.Message);

        var bad = dir.Write("bad.txt", "img/a/1.png 1\nimg/a/1.png one\n"u8.ToArray());
        var e = Assert.Throws<DataFormatException>(() => ListFile.Read(bad, dir.Path, 3));
        Assert.Contains("bad.txt line 2", e.Message);
        Assert.Contains("expected 'relative/path label'", e.Message);
        var range = dir.Write("range.txt", "img/a/1.png 3\n"u8.ToArray());
        Assert.Contains("line 1: label 3 is out of range: expected 0..2",
            Assert.Throws<DataFormatException>(() => ListFile.Read(range, dir.Path, 3)).Message);
        var nolabel = dir.Write("nolabel.txt", "img/a/1.png\n"u8.ToArray());
        Assert.Contains("nolabel.txt line 1", Assert.Throws<DataFormatException>(() => ListFile.Read(nolabel, dir.Path,
            3)).Message);
        Assert.Throws<FileNotFoundException>(() => ListFile.Read(dir.File("none.txt"), dir.Path, 3));
    }
}
