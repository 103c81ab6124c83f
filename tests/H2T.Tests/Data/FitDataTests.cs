using H2T.Data;
using H2T.Settings;

namespace H2T.Tests.Data;

/// <summary>Fixtures of the fit's data step: real images written by Debian's PIL (Fixtures/fit, see
/// make_fit_fixtures.py) and the committed CIFAR-10 JPEGs.</summary>
static class FitFixtures
{
    public static string Folder => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Data", "Fixtures",
        "fit");
    public static string Mode(string name) => Path.Combine(Folder, "modes", name);
    public static string Cifar(string split, string cls, int i) =>
        Path.Combine(DataTestFiles.CifarJpgSample, split, cls, $"{i:0000}.jpg");

    /// <summary>Copies CIFAR images into <paramref name="dir"/>/<paramref name="relative"/>/&lt;class&gt;/: the
    /// given count per class (first images of the committed sample's train split).</summary>
    public static void Classes(TempDir dir, string relative, params (string Class, int Count)[] classes)
    {
        foreach (var (cls, count) in classes)
        {
            // Class names CIFAR-10 does not have (emu) get bird images.
            var from = Directory.Exists(Path.Combine(DataTestFiles.CifarJpgSample, "train", cls)) ? cls : "bird";
            for (int i = 0; i < count; i++)
                Copy(Cifar("train", from, i), dir.File(Path.Combine(relative, cls, $"{i:0000}.jpg")));
        }
    }

    public static void Copy(string from, string to)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        File.Copy(from, to);
    }

    /// <summary>Every file and folder under <paramref name="root"/> (to show that a refusal wrote nothing).</summary>
    public static string[] Listing(string root) =>
        [.. Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)];

    /// <summary>The refusal of <paramref name="act"/>, checking that it wrote nothing under <paramref
    /// name="root"/>.</summary>
    public static DataFormatException Refused(string root, Action act)
    {
        var before = Listing(root);
        var e = Assert.Throws<DataFormatException>(act);
        Assert.Equal(before, Listing(root));
        return e;
    }
}

public sealed class ImageSetReaderTests
{
    [Fact]
    public void TheThreeFolderLayoutsAreRead()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "a/train", ("cat", 3), ("dog", 2));
        FitFixtures.Classes(dir, "a/test", ("dog", 1));
        dir.Write("a/README.txt", [1]);
        dir.Write("a/train/cat/.DS_Store", [1]);
        dir.Write("a/train/cat/notes.txt", [1]);
        var s = ImageSetReader.Read(dir.File("a"));
        Assert.Equal("train/ and test/", s.Layout);
        Assert.Equal(["cat", "dog"], s.ClassNames);
        Assert.Equal([0, 0, 0, 1, 1], s.Train.Labels);
        Assert.Equal([1], s.Test!.Labels);
        Assert.All(s.Train.Paths, p => Assert.True(Path.IsPathRooted(p) && File.Exists(p)));
        Assert.Equal(2, s.Ignored); // README, notes.txt; hidden .DS_Store is skipped silently
        Assert.Contains(s.Notes, n => n.Contains("no image of 1 class(es): cat"));

        FitFixtures.Classes(dir, "b/train", ("cat", 2), ("bird", 2));
        var b = ImageSetReader.Read(dir.File("b"));
        Assert.Equal("train/ only", b.Layout);
        Assert.Null(b.Test);
        Assert.Equal(["bird", "cat"], b.ClassNames); // ordinal order

        // Class folders directly; a class may gather its images from subfolders at any depth.
        FitFixtures.Classes(dir, "c", ("cat", 2), ("dog", 2));
        FitFixtures.Copy(FitFixtures.Cifar("train", "frog", 0), dir.File("c/frog/2019/0.jpg"));
        FitFixtures.Copy(FitFixtures.Cifar("train", "frog", 1), dir.File("c/frog/2020/deep/1.JPG"));
        FitFixtures.Copy(FitFixtures.Cifar("train", "frog", 2), dir.File("c/frog/2020/2.jpeg"));
        var c = ImageSetReader.Read(dir.File("c"));
        Assert.Equal("class folders", c.Layout);
        Assert.Equal(["cat", "dog", "frog"], c.ClassNames);
        Assert.Equal([0, 0, 1, 1, 2, 2, 2], c.Train.Labels);
        Assert.Contains(c.Notes, n => n.Contains("class 'frog' gathers its images from 2 subfolder(s)"));
    }

    [Fact]
    public void AnEmptyFolderIsRefused()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("empty"));
        var e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("empty")));
        Assert.Contains(dir.File("empty"), e.Message);
        Assert.Contains("empty", e.Message);
        Directory.CreateDirectory(dir.File("e2/train/cat"));
        Directory.CreateDirectory(dir.File("e2/train/dog"));
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("e2")));
        Assert.Contains("class 'cat' has no images", e.Message);
        Assert.Throws<FileNotFoundException>(() => ImageSetReader.Read(dir.File("missing")));
    }

    [Fact]
    public void OneClassIsRefused()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "one/train", ("cat", 3));
        var e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("one")));
        Assert.Contains("one class only ('cat'): need at least 2 classes", e.Message);
        // A folder given one level too high: its one 'class' holds the real classes.
        FitFixtures.Classes(dir, "high/animals", ("cat", 1), ("dog", 1));
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("high")));
        Assert.Contains("'animals'", e.Message);
        Assert.Contains($"point at {dir.File("high/animals")}", e.Message);
        var list = dir.Write("one.csv", System.Text.Encoding.UTF8.GetBytes("one/train/cat/0000.jpg,cat\n"));
        Assert.Contains("one class only ('cat')",
            FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(list)).Message);
    }

    [Fact]
    public void ATestClassAbsentFromTrainingIsNamed()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d/train", ("cat", 2), ("dog", 2));
        FitFixtures.Classes(dir, "d/test", ("cat", 1), ("emu", 1));
        var e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("d")));
        Assert.Contains("test class(es) 'emu' absent from training", e.Message);
        Assert.Contains(dir.File("d/test"), e.Message);
        var csv = dir.Write("d.csv", System.Text.Encoding.UTF8.GetBytes(
            "path,label,split\nd/train/cat/0000.jpg,cat,train\nd/train/dog/0000.jpg,dog\n" +
            "d/test/emu/0000.jpg,emu,test\n"));
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(csv));
        Assert.Contains($"{csv}:4: test class 'emu' is absent from training", e.Message);
    }

    [Fact]
    public void MixedUpLayoutsAreRefusedNamingWhatIsOutOfPlace()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "m1", ("cat", 1), ("dog", 1));
        FitFixtures.Copy(FitFixtures.Cifar("train", "cat", 9), dir.File("m1/stray.jpg"));
        var e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("m1")));
        Assert.Contains("mixed-up layout: image file(s) stray.jpg next to the class folders", e.Message);

        FitFixtures.Classes(dir, "m2/train", ("cat", 1), ("dog", 1));
        FitFixtures.Classes(dir, "m2/val", ("cat", 1), ("dog", 1));
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("m2")));
        Assert.Contains("train/ next to val/", e.Message);

        FitFixtures.Classes(dir, "m3/train", ("cat", 1), ("dog", 1));
        FitFixtures.Copy(FitFixtures.Cifar("train", "cat", 9), dir.File("m3/x.png.jpg"));
        Assert.Contains("x.png.jpg next to train/",
            FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("m3"))).Message);

        FitFixtures.Classes(dir, "m4", ("cat", 1), ("dog", 1));
        FitFixtures.Copy(FitFixtures.Cifar("train", "dog", 9), dir.File("m4/dog/puppies/9.jpg"));
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("m4")));
        Assert.Contains("class 'dog' holds images directly and in subfolders (puppies/)", e.Message);
        Assert.Contains(dir.File("m4/dog"), e.Message);

        FitFixtures.Classes(dir, "m5/test", ("cat", 1), ("dog", 1));
        Assert.Contains("has test/ but no train/",
            FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("m5"))).Message);

        FitFixtures.Classes(dir, "m6/train", ("cat", 1), ("dog", 1));
        FitFixtures.Copy(FitFixtures.Cifar("train", "dog", 9), dir.File("m6/train/9.jpg"));
        Assert.Contains("directly in train/",
            FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("m6"))).Message);
    }

    [Fact]
    public void SymbolicLinkLoopsAreRefusedNamingTheLink()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "s/train", ("cat", 1), ("dog", 1));
        var link = dir.File("s/train/cat/again");
        Directory.CreateSymbolicLink(link, "../.."); // s/train/cat/again -> s/
        var e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("s")));
        Assert.Contains($"{link}: symbolic link loop", e.Message);
        File.Delete(link);

        var self = dir.File("s/train/dog/self");
        File.CreateSymbolicLink(self, "self"); // a link to itself: ELOOP when followed
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("s")));
        Assert.Contains($"{self}: symbolic link loop", e.Message);
        File.Delete(self);

        // A link to another class folder would read its images twice.
        var twice = dir.File("s/train/dog/cats");
        Directory.CreateSymbolicLink(twice, "../cat");
        e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(dir.File("s")));
        Assert.Contains("already read as", e.Message);
        Assert.Contains(twice, e.Message);
        File.Delete(twice);

        // A link to a folder of images elsewhere is followed.
        FitFixtures.Classes(dir, "elsewhere", ("bird", 2));
        Directory.CreateSymbolicLink(dir.File("s/train/bird"), dir.File("elsewhere/bird"));
        var s = ImageSetReader.Read(dir.File("s"));
        Assert.Equal(["bird", "cat", "dog"], s.ClassNames);
        Assert.Equal(4, s.Train.Count);
    }

    [Fact]
    public void ListFilesCsvAndWhitespaceWithErrorsNamingFileAndLine()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "img", ("cat", 3), ("dog", 2));
        var abs = dir.File("img/dog/0001.jpg");
        FitFixtures.Copy(FitFixtures.Cifar("train", "cat", 7), dir.File("img/a, \"b\".jpg"));
        var csv = dir.Write("sub/../l.csv", System.Text.Encoding.UTF8.GetBytes(
            "path,label,split\n# a comment\n\nimg/cat/0000.jpg,cat\nimg/cat/0001.jpg,cat,train\n" +
            $"{abs},dog\nimg/dog/0000.jpg,dog,test\n\"img/a, \"\"b\"\".jpg\",cat\n"));
        var s = ImageSetReader.Read(csv);
        Assert.Equal("list l.csv", s.Layout);
        Assert.Equal(["cat", "dog"], s.ClassNames);
        Assert.Equal([0, 0, 1, 0], s.Train.Labels);
        Assert.Equal(dir.File("img/a, \"b\".jpg"), s.Train.Paths[3]);
        Assert.Equal([dir.File("img/dog/0000.jpg")], s.Test!.Paths);

        FitFixtures.Copy(FitFixtures.Cifar("train", "cat", 8), dir.File("img/with space.jpg"));
        var txt = dir.Write("l.txt", System.Text.Encoding.UTF8.GetBytes(
            "path label\n# path label [split]\nimg/cat/0000.jpg cat\nimg/cat/0001.jpg\tcat\n" +
            "img/dog/0000.jpg dog test\nimg/dog/0001.jpg  dog\nimg/with space.jpg cat train\n"));
        var t = ImageSetReader.Read(txt);
        Assert.Equal([0, 0, 1, 0], t.Train.Labels);
        Assert.Equal(dir.File("img/with space.jpg"), t.Train.Paths[3]);
        Assert.Equal([1], t.Test!.Labels);

        void Bad(string content, string expected)
        {
            var f = dir.Write("bad.csv", System.Text.Encoding.UTF8.GetBytes(content));
            var e = FitFixtures.Refused(dir.Path, () => ImageSetReader.Read(f));
            Assert.Contains(expected, e.Message);
        }
        Bad("img/cat/0000.jpg,cat\nimg/dog/0000.jpg\n", $"{dir.File("bad.csv")}:2: 'img/dog/0000.jpg' has 1 field(s)");
        Bad("img/cat/0000.jpg,cat\nimg/dog/none.jpg,dog\n", $"{dir.File("bad.csv")}:2: img/dog/none.jpg: image file " +
            "not found");
        Bad("img/cat/0000.jpg,cat\nimg/dog/0000.jpg, \n", $"{dir.File("bad.csv")}:2: empty label");
        Bad("img/cat/0000.jpg,cat\nimg/dog/0000.jpg,dog,val\n", $"{dir.File("bad.csv")}:2: split 'val': expected " +
            "train or test");
        Bad("img/cat/0000.jpg,cat\n\"img/dog/0000.jpg,dog\n", $"{dir.File("bad.csv")}:2: unterminated quoted field");
        Bad("img/cat/0000.jpg,cat\nl.txt,dog\n", $"{dir.File("bad.csv")}:2: l.txt is not an image file");
        Bad("# nothing\n", "no entries");
    }
}

public sealed class PixelLimitTests
{
    [Fact]
    public void A30000By30000PngIsRefusedFromItsHeaderBeforeDecoding()
    {
        var bomb = Path.Combine(FitFixtures.Folder, "bomb.png");
        Assert.InRange(new FileInfo(bomb).Length, 1, 200_000); // PIL's mode '1' zeros: ~110 KB
        const string Why = "30000x30000 = 900,000,000 pixels is over the limit of 89,478,485 " +
            "(a decompression-bomb guard; raise it with --max-pixels)";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal($"{bomb}: {Why}", Assert.Throws<DataFormatException>(() => ImageDecoder.Probe(bomb)).Message);
        var buf = new byte[3 * 8 * 8];
        Assert.Equal($"{bomb}: {Why}", Assert.Throws<DataFormatException>(() =>
            ImageDecoder.Decode(bomb, new DecodePlan(new ImageShape(3, 8, 8)), buf)).Message);
        using (var stream = File.OpenRead(bomb))
            Assert.Contains(Why, Assert.Throws<DataFormatException>(() =>
                ImageDecoder.Decode(stream, new DecodePlan(new ImageShape(3, 8, 8)), buf, "upload")).Message);
        Assert.True(watch.ElapsedMilliseconds < 2000, $"took {watch.ElapsedMilliseconds} ms: it was decoded");

        // In the audit it is one of the files that cannot be used: refused, or skipped with the flag.
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d", ("cat", 3), ("dog", 3));
        FitFixtures.Copy(bomb, dir.File("d/dog/huge.png"));
        var set = ImageSetReader.Read(dir.File("d"));
        var e = FitFixtures.Refused(dir.Path, () => DataAudit.Run(set, new DataAuditOptions()));
        Assert.Contains($"{dir.File("d/dog/huge.png")}: {Why}", e.Message);
        var audit = DataAudit.Run(set, new DataAuditOptions(SkipUndecodable: true));
        Assert.Equal(dir.File("d/dog/huge.png"), Assert.Single(audit.Undecodable).Path);
        Assert.Equal(3, audit.Usable.Train.CountPerClass(2)[1]);
        // A higher limit lets the header through (the audit would then decode it; Probe only reads the header).
        var old = ImageDecoder.MaxPixels;
        try
        {
            ImageDecoder.MaxPixels = 1_000_000_000;
            Assert.Equal((30000, 30000), ImageDecoder.Probe(bomb));
        }
        finally { ImageDecoder.MaxPixels = old; }
    }
}

public sealed class DataAuditTests
{
    [Fact]
    public void CountsSizesAndModesFromTheHeaders()
    {
        using var dir = new TempDir();
        string[] files = ["rgb.png", "rgba.png", "grey.png", "grey-alpha.png", "palette.png", "grey16.png", "rgb.jpg",
            "grey.jpg", "cmyk.jpg"];
        foreach (var f in files) FitFixtures.Copy(FitFixtures.Mode(f), dir.File($"d/modes/{f}"));
        FitFixtures.Classes(dir, "d", ("cat", 4));
        var set = ImageSetReader.Read(dir.File("d"));
        Assert.Equal("16-bit grey", ImageHeader.Sniff(File.ReadAllBytes(FitFixtures.Mode("grey16.png"))));
        Assert.Equal("CMYK", ImageHeader.Sniff(File.ReadAllBytes(FitFixtures.Mode("cmyk.jpg"))));
        var audit = DataAudit.Run(set, new DataAuditOptions());
        var modes = audit.Modes.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(new Dictionary<string, int>
        {
            ["RGB"] = 4 + 2, ["RGBA"] = 1, ["grey"] = 2, ["grey+alpha"] = 1, ["palette"] = 1, ["16-bit grey"] = 1,
            ["CMYK"] = 1,
        }, modes);
        Assert.Equal(new ClassCount("cat", 4, 0), audit.ClassCounts[0]);
        Assert.Equal(new ClassCount("modes", 9, 0), audit.ClassCounts[1]);
        Assert.Equal(9.0 / 4, audit.ImbalanceFactor);
        Assert.Equal(new SizeStats(24, 24, 32, 16, 16, 32), audit.Sizes);
        var lines = audit.Lines();
        Assert.Contains(lines, l => l.StartsWith("modes: RGB 6; ", StringComparison.Ordinal) && l.Contains("CMYK 1"));
        Assert.Contains(lines, l => l.Contains("train per class: 9 (modes) to 4 (cat): imbalance factor 2."));
        Assert.All(lines, l => Assert.True(l.Length <= 200, l));
    }

    [Fact]
    public void AnUndecodableFileIsNamedThenSkippedWithTheFlag()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d/train", ("cat", 3), ("dog", 3));
        var cut = dir.File("d/train/dog/0001.jpg");
        var bytes = File.ReadAllBytes(cut);
        File.WriteAllBytes(cut, bytes[..(bytes.Length * 2 / 3)]); // a real JPEG, its scan cut short
        var garbage = dir.Write("d/train/cat/junk.png", "not an image"u8.ToArray());
        var set = ImageSetReader.Read(dir.File("d"));
        var e = FitFixtures.Refused(dir.Path, () => DataAudit.Run(set, new DataAuditOptions()));
        Assert.Contains($"{cut}: does not decode", e.Message);
        Assert.Contains($"{garbage}: not a decodable image", e.Message);
        Assert.Contains("--skip-undecodable", e.Message);
        var audit = DataAudit.Run(set, new DataAuditOptions(SkipUndecodable: true));
        Assert.Equal([garbage, cut], audit.Undecodable.Select(b => b.Path).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(cut, audit.Usable.Train.Paths);
        Assert.Equal([3, 2], audit.Usable.Train.CountPerClass(2));
        Assert.Equal(new ClassCount("dog", 2, 0), audit.ClassCounts[1]);
        Assert.Contains(audit.Warnings, w => w.StartsWith(cut, StringComparison.Ordinal));
        Assert.Contains(audit.Lines(), l => l.StartsWith("undecodable: 2 skipped", StringComparison.Ordinal));
    }

    [Fact]
    public void AOneByOneImageIsWarnedAboutByNameAndSkipped()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d", ("cat", 3), ("dog", 3));
        var dot = dir.Write("d/cat/pixel.png", DataTestFiles.Image(1, 1, 200, 10, 10));
        var audit = DataAudit.Run(ImageSetReader.Read(dir.File("d")), new DataAuditOptions());
        var small = Assert.Single(audit.TooSmall);
        Assert.Equal(dot, small.Path);
        Assert.Contains("1x1 pixels: smaller than 8x8, too small to learn from", small.Reason);
        Assert.Contains(audit.Warnings, w => w.StartsWith(dot, StringComparison.Ordinal) && w.Contains("1x1"));
        Assert.DoesNotContain(dot, audit.Usable.Train.Paths);
        Assert.Equal(6, audit.Usable.Train.Count);
        Assert.Empty(audit.Undecodable);
    }

    [Fact]
    public void DuplicatesAcrossTrainAndTestExactAndReencoded()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d/train", ("cat", 6), ("dog", 6), ("ship", 6));
        FitFixtures.Classes(dir, "d/test", ("dog", 6)); // the same files: exact duplicates
        File.Delete(dir.File("d/test/dog/0005.jpg"));
        // The first training cat, re-encoded by PIL at JPEG quality 30, as a test image of its class.
        FitFixtures.Copy(Path.Combine(FitFixtures.Folder, "cat-q30.jpg"), dir.File("d/test/cat/q30.jpg"));
        for (int i = 0; i < 4; i++)
            FitFixtures.Copy(FitFixtures.Cifar("test", "ship", i), dir.File($"d/test/ship/{i}.jpg"));
        var audit = DataAudit.Run(ImageSetReader.Read(dir.File("d")), new DataAuditOptions());
        var exact = audit.CrossDuplicates.Where(d => d.Exact).ToList();
        Assert.Equal(5, exact.Count);
        Assert.All(exact, d => Assert.Equal(0, d.Distance));
        Assert.All(exact, d => Assert.Equal(Path.GetFileName(d.TrainPath), Path.GetFileName(d.TestPath)));
        var near = Assert.Single(audit.CrossDuplicates, d => !d.Exact);
        Assert.Equal(dir.File("d/train/cat/0000.jpg"), near.TrainPath);
        Assert.Equal(dir.File("d/test/cat/q30.jpg"), near.TestPath);
        Assert.InRange(near.Distance, 0, DataAuditOptions.DefaultNearDuplicateBits);
        Assert.Contains(audit.Warnings, w => w.Contains("6 test image pair(s) duplicate training images (5 exact)"));
        Assert.Contains(audit.Lines(), l => l == "duplicates across train and test: 5 exact, 1 near (perceptual hash " +
            "within 6 bits)");
        Assert.Equal(0, audit.TrainDuplicatePairs);
    }

    [Fact]
    public void ThePigeonholeSearchFindsExactlyThePairsBruteForceFinds()
    {
        var rng = new Random(7);
        ulong Near(ulong h, int flips)
        {
            for (int f = 0; f < flips; f++) h ^= 1UL << rng.Next(64);
            return h;
        }
        var a = new ulong[400];
        for (int i = 0; i < a.Length; i++) a[i] = i % 3 == 0 || i == 0 ? (ulong)rng.NextInt64() : Near(a[i - 1],
            rng.Next(12));
        var b = a.Take(150).Select(h => Near(h, rng.Next(10))).ToArray();
        foreach (var bits in new[] { 0, 3, 6, 10 })
        {
            var brute = (from i in Enumerable.Range(0, a.Length) from j in Enumerable.Range(0, b.Length)
                let d = PerceptualHash.Distance(a[i], b[j]) where d <= bits select (i, j, d)).ToList();
            Assert.Equal(brute, PerceptualHash.Pairs(a, b, bits).Select(p => (p.A, p.B, p.Distance)).ToList());
            var within = (from i in Enumerable.Range(0, a.Length) from j in Enumerable.Range(i + 1, a.Length - i - 1)
                let d = PerceptualHash.Distance(a[i], a[j]) where d <= bits select (i, j, d)).ToList();
            Assert.Equal(within, PerceptualHash.Pairs(a, null, bits).Select(p => (p.A, p.B, p.Distance)).ToList());
            Assert.NotEmpty(brute);
        }
    }
}

public sealed class FitSplitTests
{
    static readonly string[] Cifar10 = [.. Cifar.Cifar10Classes];

    [Fact]
    public void AClassWithOneImageIsRefusedNamingIt()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d", ("cat", 5), ("dog", 1));
        var audit = DataAudit.Run(ImageSetReader.Read(dir.File("d")), new DataAuditOptions());
        Assert.Equal(["dog"], audit.SmallClasses);
        Assert.Contains(audit.Warnings, w => w.Contains("class 'dog' has 1 usable training image(s)"));
        var e = FitFixtures.Refused(dir.Path, () => FitSplit.Make(audit, 0));
        Assert.Contains("class 'dog' has 1 usable training image(s): need at least 3 per class (1 train, 1 " +
            "validation, 1 test)", e.Message);
        // With the data's own test split two are enough.
        FitFixtures.Classes(dir, "t/train", ("cat", 5), ("dog", 1));
        FitFixtures.Classes(dir, "t/test", ("cat", 1), ("dog", 1));
        e = FitFixtures.Refused(dir.Path, () => FitSplit.Make(ImageSetReader.Read(dir.File("t")), 0,
            new FitSplitOptions()));
        Assert.Contains("class 'dog' has 1 usable training image(s): need at least 2 per class (1 train, 1 " +
            "validation)", e.Message);
    }

    [Fact]
    public void AStratifiedTestSplitAndABalancedValidationSplitRoundTripThroughTheManifestDataset()
    {
        using var dir = new TempDir();
        int[] n = [20, 16, 12, 10, 8, 6, 5, 4, 3, 3];
        FitFixtures.Classes(dir, "d", [.. Cifar10.Zip(n)]);
        var audit = DataAudit.Run(ImageSetReader.Read(dir.File("d")), new DataAuditOptions());
        Assert.Empty(audit.TrainDuplicateGroups);
        var split = FitSplit.Make(audit, seed: 3);
        // Test: round(0.2 n), at least 1, leaving 2: 4,3,2,2,2,1,1,1,1,1.
        int[] test = [4, 3, 2, 2, 2, 1, 1, 1, 1, 1];
        Assert.Equal(test, split.TestCounts);
        // Validation: floor(0.2 x 2) clamped to 1 per class (the smallest class keeps 2 after the test split).
        Assert.Equal(1, split.ValidationPerClass);
        Assert.All(split.ValidationCounts, v => Assert.Equal(1, v));
        Assert.Equal(n.Zip(test, (a, b) => a - b - 1), split.TrainCounts);
        var all = split.Train.Paths.Concat(split.Validation.Paths).Concat(split.Test.Paths).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.Equal(n.Sum(), all.Count);
        Assert.Contains("validation: 1 per class", split.Describe());
        Assert.Contains("test: 20% of each class", split.Describe());
        // Seeded: the same seed draws the same split, another seed another.
        Assert.Equal(split.Test.Paths, FitSplit.Make(audit, seed: 3).Test.Paths);
        Assert.NotEqual(split.Test.Paths, FitSplit.Make(audit, seed: 4).Test.Paths);

        var manifest = dir.File("out/data");
        split.Write(manifest);
        Assert.Equal(["classes.csv", "test.csv", "train.csv", "val.csv"],
            Directory.GetFiles(manifest).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal([manifest], Directory.GetDirectories(dir.File("out"))); // no temporary folder left
        var classesCsv = File.ReadAllLines(Path.Combine(manifest, "classes.csv"));
        Assert.Equal("class,train,val,test,group", classesCsv[0]);
        Assert.Equal($"airplane,15,1,4,{split.Groups.GroupOf(0)}", classesCsv[1]);
        Assert.Equal("path,label", File.ReadLines(Path.Combine(manifest, "val.csv")).First());

        var config = new DataConfig("manifest", manifest, ImbFactor: 1, ImageSize: 32);
        var s = DatasetCatalog.Load(config);
        Assert.Equal(Cifar10, s.ClassNames);
        Assert.Equal(split.TrainCounts, s.TrainClassCounts);
        Assert.Equal(split.TestCounts, s.TestClassCounts);
        Assert.Equal(split.ValidationCounts, DatasetSplits.CountPerClass(s.Validation!.Labels, 10));
        Assert.Equal(new ImageShape(3, 32, 32), s.Train.Shape);
        Assert.Equal(Normalization.ImageNet, s.Norm);
        Assert.Equal(split.Groups.Tail, s.Groups.Tail);
        Assert.Equal(split.Groups.Head, s.Groups.Head);
        Assert.Contains("validation: 10 images, the manifest's val.csv", s.ValidationSplit!.Describe(s.ClassNames));
        Assert.All(s.ValidationSplit.HeldOutFromTraining, h => Assert.Equal(0, h));
        // The pixels are the files' own: the first training image decodes as the file does.
        var want = new byte[s.Train.Shape.Size];
        var got = new byte[s.Train.Shape.Size];
        ImageDecoder.Decode(split.Train.Paths[0], new DecodePlan(s.Train.Shape), want);
        s.Train.ReadInto(0, got);
        Assert.Equal(want, got);
        // A checkpoint reopens the same data from the same config, and a sweep's validation size draws nothing.
        var again = DatasetCatalog.Load(config with { ValidationPerClass = 100 });
        Assert.Equal(s.TrainClassCounts, again.TrainClassCounts);
        Assert.Equal(s.Validation.Labels, again.Validation!.Labels);
        Assert.Contains("expected 1 (imb_factor: 1)", Assert.Throws<ArgumentException>(() =>
            DatasetCatalog.Load(config with { ImbFactor = 100 })).Message);
        Assert.Contains("manifest", DatasetCatalog.Names);
        Assert.Contains("classes.csv", DatasetCatalog.PathHint("manifest"));

        // Written again: replaced whole; a folder holding anything else is refused, untouched.
        var other = FitSplit.Make(audit, seed: 4);
        other.Write(manifest);
        Assert.Equal(other.Test.Paths, Manifest.Read(manifest).Test.Paths);
        Assert.Equal([manifest], Directory.GetDirectories(dir.File("out")));
        dir.Write("other/keep.txt", [1]);
        Assert.Throws<IOException>(() => split.Write(dir.File("other")));
        Assert.Equal([dir.File("other/keep.txt")], Directory.GetFiles(dir.File("other")));
    }

    [Fact]
    public void ValidationIsCappedAndTheTailKeepsEightyPercent()
    {
        using var dir = new TempDir();
        var train = dir.File("t");
        FitFixtures.Classes(dir, "t/train", ("cat", 20), ("dog", 15));
        FitFixtures.Classes(dir, "t/test", ("cat", 1), ("dog", 1));
        var split = FitSplit.Make(ImageSetReader.Read(train), 0, new FitSplitOptions(MaxValidationPerClass: 2));
        Assert.True(split.TestGiven);
        Assert.Equal(2, split.ValidationPerClass); // floor(0.2 x 15) = 3, capped at 2
        Assert.Equal([18, 13], split.TrainCounts);
        var wide = FitSplit.Make(ImageSetReader.Read(train), 0, new FitSplitOptions());
        Assert.Equal(3, wide.ValidationPerClass);
        Assert.True(wide.TrainCounts[1] >= 0.8 * 15);
    }

    [Fact]
    public void DuplicatesStayOnOneSideOfADrawnSplit()
    {
        using var dir = new TempDir();
        FitFixtures.Classes(dir, "d", ("cat", 20), ("dog", 10));
        // Three copies of one cat (an exact copy and PIL's quality-30 re-encode): one unit in every split.
        FitFixtures.Copy(FitFixtures.Cifar("train", "cat", 0), dir.File("d/cat/copy.jpg"));
        FitFixtures.Copy(Path.Combine(FitFixtures.Folder, "cat-q30.jpg"), dir.File("d/cat/q30.jpg"));
        var audit = DataAudit.Run(ImageSetReader.Read(dir.File("d")), new DataAuditOptions());
        var group = Assert.Single(audit.TrainDuplicateGroups);
        Assert.Equal(3, group.Count);
        Assert.Equal(3, audit.TrainDuplicatePairs);
        Assert.Equal(1, audit.TrainExactDuplicatePairs);
        int inTest = 0;
        for (int seed = 0; seed < 16; seed++)
        {
            var split = FitSplit.Make(audit, seed);
            int[] sides = [group.Count(split.Train.Paths.Contains), group.Count(split.Validation.Paths.Contains),
                group.Count(split.Test.Paths.Contains)];
            Assert.Equal(3, sides.Max());
            if (sides[2] == 3) inTest++;
            Assert.Equal(1, split.GroupsKeptTogether);
            Assert.Equal(32, split.Train.Count + split.Validation.Count + split.Test.Count);
            Assert.Equal([4, 2], split.TestCounts); // round(0.2 x 22) = 4 cats, 2 dogs: the group fits the quota
        }
        Assert.InRange(inTest, 1, 15); // drawn as one unit, sometimes into the test split
    }
}
