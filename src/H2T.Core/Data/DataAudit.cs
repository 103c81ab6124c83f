using System.Globalization;
using System.Security.Cryptography;
using SkiaSharp;

namespace H2T.Data;

/// <summary>What <see cref="DataAudit.Run"/> checks and how strictly.</summary>
/// <param name="MaxPixels">The decompression-bomb guard (PIL's MAX_IMAGE_PIXELS by default): larger images are not
/// decoded and count as undecodable.</param>
/// <param name="SkipUndecodable">Skip the files that do not decode (and those over the pixel limit) instead of
/// refusing the data.</param>
/// <param name="NearDuplicateBits">Perceptual-hash distance at or below which two images are near duplicates. 6 of
/// 64 (distances are even: each hash sets 32 bits): on CIFAR-10's 50,000 + 10,000 JPEGs, 10 random cross pairs at
/// distance 6 were all the same picture, at 8 three of 10 were different pictures, at 10 most; 184 test images have a
/// training duplicate within 6 bits. A JPEG re-encode at quality 30 moves 0 bits there.</param>
/// <param name="MinPerClass">Training images a class needs after skipping to be validated on (1 train + 1
/// validation).</param>
/// <param name="MinSide">Images with a side under this many pixels are skipped with a warning: too small to learn
/// from.</param>
public sealed record DataAuditOptions(long MaxPixels = ImageDecoder.DefaultMaxPixels, bool SkipUndecodable = false,
    int NearDuplicateBits = DataAuditOptions.DefaultNearDuplicateBits, int MinPerClass = 2, int MinSide = 8)
{
    public const int DefaultNearDuplicateBits = 6;
}

/// <summary>A class's usable images in each split.</summary>
public sealed record ClassCount(string Name, int Train, int Test);

/// <summary>A file left out of the data, and why.</summary>
public sealed record BadImage(string Path, string Reason);

/// <summary>A training image and a test image that are the same picture (<see cref="Exact"/>: the same
/// bytes).</summary>
public sealed record CrossDuplicate(string TrainPath, string TestPath, int Distance, bool Exact);

/// <summary>Image sizes (from the headers) over the usable images.</summary>
public sealed record SizeStats(int MinWidth, int MedianWidth, int MaxWidth, int MinHeight, int MedianHeight,
    int MaxHeight);

/// <summary>
/// The data checked before any training: counts per class and the imbalance factor, image sizes and modes, files that
/// do not decode (each image decoded fully once, in parallel, with the project's decoder), images too small to learn
/// from, exact (SHA-256) and near (perceptual hash) duplicates across train and test and within train, and classes
/// too small to validate on. <see cref="Usable"/> is the set without the skipped files.
/// </summary>
public sealed class DataAudit
{
    DataAudit(ImageSet set, DataAuditOptions options) { Set = set; Options = options; }

    public ImageSet Set { get; }
    public DataAuditOptions Options { get; }
    /// <summary><see cref="Set"/> without the undecodable and too small files.</summary>
    public ImageSet Usable { get; private set; } = null!;
    public IReadOnlyList<ClassCount> ClassCounts { get; private set; } = [];
    /// <summary>Largest over smallest usable training class (infinity when a class has none).</summary>
    public double ImbalanceFactor { get; private set; }
    /// <summary>Files that do not decode or are over the pixel limit (refused unless skipping).</summary>
    public IReadOnlyList<BadImage> Undecodable { get; private set; } = [];
    /// <summary>Images with a side under <see cref="DataAuditOptions.MinSide"/>: skipped.</summary>
    public IReadOnlyList<BadImage> TooSmall { get; private set; } = [];
    public IReadOnlyList<CrossDuplicate> CrossDuplicates { get; private set; } = [];
    /// <summary>Near- (or exact) duplicate pairs within the training images.</summary>
    public int TrainDuplicatePairs { get; private set; }
    public int TrainExactDuplicatePairs { get; private set; }
    /// <summary>Training images that are duplicates of one another (connected by pairs), two or more paths each:
    /// a split made from the training images keeps each group on one side.</summary>
    public IReadOnlyList<IReadOnlyList<string>> TrainDuplicateGroups { get; private set; } = [];
    /// <summary>Classes with fewer than <see cref="DataAuditOptions.MinPerClass"/> usable training images.</summary>
    public IReadOnlyList<string> SmallClasses { get; private set; } = [];
    /// <summary>Pixel modes over the decodable images, most frequent first.</summary>
    public IReadOnlyList<KeyValuePair<string, int>> Modes { get; private set; } = [];
    public SizeStats? Sizes { get; private set; }
    public IReadOnlyList<string> Warnings { get; private set; } = [];

    sealed class FileResult
    {
        public int Width, Height;
        public string? Mode;
        public byte[]? Sha;
        public ulong Hash;
        public string? Error;
        public bool TooSmall;
    }

    public static DataAudit Run(ImageSet set, DataAuditOptions options, IProgress<double>? progress = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(options);
        if (options.NearDuplicateBits is < 0 or > 63)
            throw new ArgumentOutOfRangeException(nameof(options), options.NearDuplicateBits,
                "near-duplicate bits: expected 0..63");
        var audit = new DataAudit(set, options);
        int nTrain = set.Train.Count, nTest = set.Test?.Count ?? 0, n = nTrain + nTest;
        string PathOf(int i) => i < nTrain ? set.Train.Paths[i] : set.Test!.Paths[i - nTrain];
        var results = new FileResult[n];
        int done = 0;
        Parallel.For(0, n, new ParallelOptions { CancellationToken = ct }, i =>
        {
            results[i] = Examine(PathOf(i), options);
            int k = Interlocked.Increment(ref done);
            if (progress is not null && (k == n || k % Math.Max(1, n / 200) == 0)) progress.Report((double)k / n);
        });
        ct.ThrowIfCancellationRequested();

        var bad = Enumerable.Range(0, n).Where(i => results[i].Error is not null)
            .Select(i => new BadImage(PathOf(i), results[i].Error!)).ToList();
        audit.Undecodable = bad;
        if (bad.Count > 0 && !options.SkipUndecodable)
            throw new DataFormatException(
                $"{set.Source}: {bad.Count} of {n} image file(s) cannot be used: " +
                string.Join("; ", bad.Take(10).Select(b => $"{b.Path}: {b.Reason}")) +
                (bad.Count > 10 ? $"; and {bad.Count - 10} more" : "") +
                ". Fix or remove them, or skip them (--skip-undecodable)");
        audit.TooSmall = [.. Enumerable.Range(0, n).Where(i => results[i].TooSmall).Select(i =>
            new BadImage(PathOf(i), $"{results[i].Width}x{results[i].Height} pixels: smaller than " +
                $"{options.MinSide}x{options.MinSide}, too small to learn from (skipped)"))];

        bool Usable(int i) => results[i].Error is null && !results[i].TooSmall;
        var usable = set with
        {
            Train = set.Train.Where(Usable),
            Test = set.Test?.Where(i => Usable(nTrain + i)),
        };
        audit.Usable = usable;
        var usableIdx = Enumerable.Range(0, n).Where(Usable).ToArray();
        var decodable = Enumerable.Range(0, n).Where(i => results[i].Error is null).ToArray();
        audit.Modes = [.. decodable.GroupBy(i => results[i].Mode ?? "?").Select(g => new KeyValuePair<string, int>(
            g.Key, g.Count())).OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal)];
        if (usableIdx.Length > 0)
        {
            var w = usableIdx.Select(i => results[i].Width).Order().ToArray();
            var h = usableIdx.Select(i => results[i].Height).Order().ToArray();
            audit.Sizes = new SizeStats(w[0], w[w.Length / 2], w[^1], h[0], h[h.Length / 2], h[^1]);
        }

        int k = set.NumClasses;
        var trainCounts = usable.Train.CountPerClass(k);
        var testCounts = usable.Test?.CountPerClass(k) ?? new int[k];
        audit.ClassCounts = [.. Enumerable.Range(0, k).Select(c => new ClassCount(set.ClassNames[c], trainCounts[c],
            testCounts[c]))];
        audit.ImbalanceFactor = trainCounts.Min() == 0 ? double.PositiveInfinity
            : (double)trainCounts.Max() / trainCounts.Min();
        audit.SmallClasses = [.. Enumerable.Range(0, k).Where(c => trainCounts[c] < options.MinPerClass)
            .Select(c => set.ClassNames[c])];

        Duplicates(audit, results, nTrain, usableIdx);
        audit.Warnings = Warn(audit);
        return audit;
    }

    static FileResult Examine(string path, DataAuditOptions options)
    {
        var r = new FileResult();
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            r.Error = $"cannot be read ({e.Message})";
            return r;
        }
        r.Sha = SHA256.HashData(bytes);
        r.Mode = ImageHeader.Sniff(bytes);
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data);
        if (codec is null)
        {
            r.Error = "not a decodable image (expected JPEG, PNG, BMP, GIF or WebP)";
            return r;
        }
        (r.Width, r.Height) = (codec.Info.Width, codec.Info.Height);
        r.Mode ??= ImageHeader.FromCodec(codec);
        if (ImageDecoder.OverPixelLimit(r.Width, r.Height, options.MaxPixels) is { } over)
        {
            r.Error = over;
            return r;
        }
        // Decoded as training decodes it (8-bit RGBA, unpremultiplied), fully: a truncated file fails here.
        var info = new SKImageInfo(r.Width, r.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var rc = codec.GetPixels(info, bitmap.GetPixels());
        if (rc is not SKCodecResult.Success)
        {
            r.Error = $"does not decode ({rc}): the file is truncated or corrupt";
            return r;
        }
        r.Hash = PerceptualHash.Of(bitmap.GetPixelSpan(), r.Width, r.Height, bitmap.RowBytes);
        r.TooSmall = Math.Min(r.Width, r.Height) < options.MinSide;
        return r;
    }

    static void Duplicates(DataAudit audit, FileResult[] results, int nTrain, int[] usableIdx)
    {
        var trainIdx = usableIdx.Where(i => i < nTrain).ToArray();
        var testIdx = usableIdx.Where(i => i >= nTrain).ToArray();
        int bits = audit.Options.NearDuplicateBits;
        var trainHashes = trainIdx.Select(i => results[i].Hash).ToArray();
        bool Same(int a, int b) => results[a].Sha.AsSpan().SequenceEqual(results[b].Sha);
        string PathOf(int i) => i < nTrain ? audit.Set.Train.Paths[i] : audit.Set.Test!.Paths[i - nTrain];
        if (testIdx.Length > 0)
        {
            var pairs = PerceptualHash.Pairs(trainHashes, [.. testIdx.Select(i => results[i].Hash)], bits);
            // Same bytes but (impossibly) different hashes cannot happen: one decoder, one hash.
            audit.CrossDuplicates = [.. pairs.Select(p => new CrossDuplicate(PathOf(trainIdx[p.A]),
                PathOf(testIdx[p.B]), p.Distance, Same(trainIdx[p.A], testIdx[p.B])))];
        }
        var within = PerceptualHash.Pairs(trainHashes, null, bits);
        audit.TrainDuplicatePairs = within.Count;
        audit.TrainExactDuplicatePairs = within.Count(p => Same(trainIdx[p.A], trainIdx[p.B]));
        var parent = Enumerable.Range(0, trainIdx.Length).ToArray();
        int Find(int x) { while (parent[x] != x) x = parent[x] = parent[parent[x]]; return x; }
        foreach (var (a, b, _) in within) parent[Find(a)] = Find(b);
        audit.TrainDuplicateGroups = [.. Enumerable.Range(0, trainIdx.Length).GroupBy(Find).Where(g => g.Count() > 1)
            .Select(g => (IReadOnlyList<string>)[.. g.Select(i => PathOf(trainIdx[i]))])];
    }

    static List<string> Warn(DataAudit a)
    {
        var w = new List<string>();
        foreach (var b in a.Undecodable) w.Add($"{b.Path}: {b.Reason} (skipped)");
        foreach (var b in a.TooSmall) w.Add($"{b.Path}: {b.Reason}");
        if (a.CrossDuplicates.Count > 0)
            w.Add($"{a.CrossDuplicates.Count} test image pair(s) duplicate training images " +
                $"({a.CrossDuplicates.Count(d => d.Exact)} exact): they inflate test scores; e.g. " +
                string.Join(", ", a.CrossDuplicates.Take(3).Select(d =>
                    $"{Rel(a, d.TrainPath)} ~ {Rel(a, d.TestPath)} ({d.Distance} bits)")));
        foreach (var c in a.SmallClasses)
        {
            int count = a.ClassCounts.First(x => x.Name == c).Train;
            w.Add($"class '{c}' has {count} usable training image(s): too few to validate on (need at least " +
                $"{a.Options.MinPerClass})");
        }
        foreach (var c in a.ClassCounts.Where(c => a.Usable.Test is not null && c.Test == 0))
            w.Add($"class '{c.Name}' has no test image");
        w.AddRange(a.Set.Notes);
        return w;
    }

    static string Rel(DataAudit a, string path)
    {
        var root = File.Exists(a.Set.Source) ? Path.GetDirectoryName(a.Set.Source)! : a.Set.Source;
        return Path.GetRelativePath(root, path);
    }

    static string N(int n) => n.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>The human report, one short line each.</summary>
    public IReadOnlyList<string> Lines()
    {
        var ci = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        int train = Usable.Train.Count, test = Usable.Test?.Count ?? 0;
        lines.Add($"data: {Set.Source} ({Set.Layout}): {Set.NumClasses} classes, {N(train)} train" +
            (Usable.Test is null ? "" : $" and {N(test)} test") + " images" +
            (Set.Ignored > 0 ? $"; {N(Set.Ignored)} other file(s) ignored (e.g. {string.Join(", ",
                Set.IgnoredExamples.Take(3))})" : ""));
        var byCount = ClassCounts.OrderByDescending(c => c.Train).ToList();
        if (byCount.Count > 0)
            lines.Add($"train per class: {N(byCount[0].Train)} ({byCount[0].Name}) to {N(byCount[^1].Train)} " +
                $"({byCount[^1].Name}): imbalance factor " +
                (double.IsInfinity(ImbalanceFactor) ? "infinite" : ImbalanceFactor.ToString("0.#", ci)));
        if (Sizes is { } s)
            lines.Add($"sizes: width {s.MinWidth}..{s.MaxWidth} (median {s.MedianWidth}), height " +
                $"{s.MinHeight}..{s.MaxHeight} (median {s.MedianHeight})");
        if (Modes.Count > 0) lines.Add("modes: " + string.Join("; ", Modes.Select(m => $"{m.Key} {N(m.Value)}")));
        if (Undecodable.Count > 0)
            lines.Add($"undecodable: {Undecodable.Count} skipped: " + string.Join(", ",
                Undecodable.Take(3).Select(b => Rel(this, b.Path))) + (Undecodable.Count > 3 ? ", ..." : ""));
        if (TooSmall.Count > 0)
            lines.Add($"too small (under {Options.MinSide}x{Options.MinSide}): {TooSmall.Count} skipped: " +
                string.Join(", ", TooSmall.Take(3).Select(b => Rel(this, b.Path))) +
                (TooSmall.Count > 3 ? ", ..." : ""));
        if (Usable.Test is not null)
            lines.Add($"duplicates across train and test: {CrossDuplicates.Count(d => d.Exact)} exact, " +
                $"{CrossDuplicates.Count(d => !d.Exact)} near (perceptual hash within {Options.NearDuplicateBits} " +
                "bits)");
        lines.Add($"duplicates within train: {N(TrainExactDuplicatePairs)} exact, " +
            $"{N(TrainDuplicatePairs - TrainExactDuplicatePairs)} near pair(s) in {N(TrainDuplicateGroups.Count)} " +
            "group(s)");
        if (SmallClasses.Count > 0)
            lines.Add($"too small to validate on (< {Options.MinPerClass} images): " + string.Join(", ",
                SmallClasses.Take(10)));
        return lines;
    }
}
