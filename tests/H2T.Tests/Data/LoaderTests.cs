using H2T.Data;
using H2T.Runtime;
using static TorchSharp.torch;

namespace H2T.Tests.Data;

public sealed class LoaderTests
{
    static readonly bool[] Flips = [false, true];

    public LoaderTests() => TorchRuntime.Initialize(threads: 2);

    // 20 images of 2x5x6 whose bytes are distinct per (image, position), labels image % 4.
    static readonly ImageShape Shape = new(2, 5, 6);
    static InMemoryImageSource Source(int n = 20)
    {
        var px = new byte[n * Shape.Size];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)(1 + i % 251);
        return new InMemoryImageSource(px, Shape, Enumerable.Range(0, n).Select(i => i % 4).ToArray(), i => $"img {i}");
    }

    static readonly Normalization Norm = new([0.5f, 0.25f], [0.5f, 0.2f]);

    static float[] Pixels(Batch b) => b.Images.data<float>().ToArray();

    [Fact]
    public void NoAugmentationGivesNormalisedPixelsInSamplerOrder()
    {
        var src = Source();
        using var loader = new BatchLoader(src, Samplers.Instance(src.Labels, 1), 8, Norm, null, seed: 0);
        Assert.Equal(3, loader.BatchesPerEpoch);
        var order = Samplers.Instance(src.Labels, 1).Indices(0);
        var batches = loader.Epoch(0).ToList();
        try
        {
            Assert.Equal([8, 8, 4], batches.Select(b => b.Count));
            var b0 = batches[0];
            Assert.Equal(new long[] { 8, 2, 5, 6 }, b0.Images.shape);
            Assert.Equal(ScalarType.Float32, b0.Images.dtype);
            Assert.Equal(ScalarType.Int64, b0.Labels.dtype);
            Assert.Equal(order[..8], b0.Indices);
            Assert.Equal(order[..8].Select(i => (long)(i % 4)), b0.Labels.data<long>().ToArray());
            var raw = new byte[Shape.Size];
            src.ReadInto(order[1], raw);
            var got = Pixels(b0).AsSpan(Shape.Size, Shape.Size).ToArray();
            for (int k = 0; k < raw.Length; k++)
            {
                int c = k / 30;
                Assert.Equal((raw[k] / 255f - Norm.Mean[c]) / Norm.Std[c], got[k], 4);
            }
        }
        finally { batches.ForEach(b => b.Dispose()); }
    }

    /// <summary>Per-pixel reference of crop-with-padding + flip, to check the row-copy implementation.</summary>
    static byte[] Reference(byte[] img, int dy, int dx, bool flip)
    {
        var (c, h, w) = Shape;
        var o = new byte[img.Length];
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int sy = y + dy, sx = x + dx;
                    byte v = sy >= 0 && sy < h && sx >= 0 && sx < w ? img[ch * h * w + sy * w + sx] : (byte)0;
                    o[ch * h * w + y * w + (flip ? w - 1 - x : x)] = v;
                }
        return o;
    }

    [Fact]
    public void CropWithPaddingAndFlipMatchAPerPixelReference()
    {
        var img = Enumerable.Range(1, Shape.Size).Select(i => (byte)i).ToArray();
        for (int dy = -4; dy <= 4; dy++)
            for (int dx = -7; dx <= 7; dx++)
            {
                var got = new byte[img.Length];
                BatchLoader.CropWithPadding(img, got, Shape, dy, dx);
                Assert.Equal(Reference(img, dy, dx, false), got);
                BatchLoader.FlipRows(got, Shape);
                Assert.Equal(Reference(img, dy, dx, true), got);
            }
    }

    [Fact]
    public void AugmentedBatchesAreCropsOrFlipsOfTheSourceImages()
    {
        var src = Source();
        using var loader = new BatchLoader(src, Samplers.Instance(src.Labels, 0), 20, new Normalization([0f, 0f],
            [1f / 255, 1f / 255]),
            AugmentConfig.CropFlip with { Padding = 2 }, seed: 11, prefetch: 0);
        using var b = loader.Epoch(0).Single();
        var px = Pixels(b);
        int flips = 0;
        for (int k = 0; k < 20; k++)
        {
            var raw = new byte[Shape.Size];
            src.ReadInto(b.Indices[k], raw);
            var got = px.AsSpan(k * Shape.Size, Shape.Size).ToArray().Select(v => (byte)Math.Round(v)).ToArray();
            var matches = (from dy in Enumerable.Range(-2, 5) from dx in Enumerable.Range(-2, 5) from f in Flips
                           where Reference(raw, dy, dx, f).SequenceEqual(got) select f).ToList();
            Assert.NotEmpty(matches);
            if (matches.All(f => f)) flips++;
        }
        Assert.InRange(flips, 2, 18);
    }

    [Fact]
    public void SameSeedSameBatchesDifferentEpochOrSeedDifferentAndPrefetchChangesNothing()
    {
        var src = Source(64);
        float[][] Run(int seed, int epoch, int prefetch)
        {
            using var l = new BatchLoader(src, Samplers.ClassBalanced(src.Labels, 3), 16, Norm, AugmentConfig.CropFlip,
                seed, prefetch: prefetch);
            var r = new List<float[]>();
            foreach (var b in l.Epoch(epoch)) using (b) r.Add([.. Pixels(b), .. b.Indices.Select(i => (float)i)]);
            return r.ToArray();
        }
        var a = Run(7, 0, 2);
        Assert.Equal(4, a.Length);
        Assert.Equal(a, Run(7, 0, 2));
        Assert.Equal(a, Run(7, 0, 0));
        Assert.NotEqual(a[0], Run(7, 1, 2)[0]);
        Assert.NotEqual(a[0], Run(8, 0, 2)[0]); // same sampler order, other crops/flips
    }

    [Fact]
    public void DropLastStoppingEarlyAndDisposeScopes()
    {
        var src = Source();
        using var loader = new BatchLoader(src, Samplers.Instance(src.Labels, 0), 8, Norm, AugmentConfig.CropFlip, 0,
            dropLast: true);
        Assert.Equal(2, loader.BatchesPerEpoch);
        Batch kept;
        using (NewDisposeScope())
        {
            kept = loader.Epoch(0).First(); // stops the producer after one batch
        }
        // The batch belongs to no scope: it survives the consumer's scope and is disposed by its owner.
        Assert.Equal(8, kept.Images.shape[0]);
        Assert.False(kept.Images.IsInvalid);
        kept.Dispose();
        Assert.Equal(2, loader.Epoch(1).Select(b => { b.Dispose(); return 1; }).Sum());
    }

    [Fact]
    public void ReadErrorsSurfaceWithTheImageOrigin()
    {
        using var dir = new TempDir();
        var good = dir.Write("a.png", DataTestFiles.Image(6, 5, 1, 2, 3));
        var bad = dir.Write("b.png", [1, 2, 3]);
        var src = new FileImageSource([good, bad], [0, 1], new DecodePlan(new ImageShape(3, 5, 6)));
        using var loader = new BatchLoader(src, Samplers.Instance(src.Labels, 0), 2, Normalization.Cifar, null, 0);
        var e = Assert.Throws<DataFormatException>(() => loader.Epoch(0).ToList().ForEach(b => b.Dispose()));
        Assert.Contains(bad, e.Message);
    }

    [Fact]
    public void RandomResizedCropResamplesToTheOutputSize()
    {
        // A constant image stays constant under any crop, flip and bilinear resampling.
        var px = Enumerable.Repeat((byte)51, 3 * 40 * 40 * 4).ToArray();
        var src = new InMemoryImageSource(px, new ImageShape(3, 40, 40), [0, 1, 0, 1], i => $"img {i}");
        using var loader = new BatchLoader(src, Samplers.Instance(src.Labels, 0), 4, Normalization.ImageNet,
            new AugmentConfig(HorizontalFlip: true, RandomResizedCrop: true, OutputSize: 24), seed: 0);
        Assert.Equal(new ImageShape(3, 24, 24), loader.OutputShape);
        using var b = loader.Epoch(0).Single();
        Assert.Equal(new long[] { 4, 3, 24, 24 }, b.Images.shape);
        var v = Pixels(b);
        Assert.Equal((0.2f - 0.485f) / 0.229f, v[0], 4);
        Assert.Equal((0.2f - 0.406f) / 0.225f, v[^1], 4);
        Assert.Throws<ArgumentException>(() => new BatchLoader(src, Samplers.Instance(src.Labels, 0), 4,
            Normalization.ImageNet,
            new AugmentConfig(RandomResizedCrop: true), 0));
        Assert.Throws<ArgumentException>(() => new BatchLoader(src, Samplers.Instance(src.Labels, 0), 4,
            Normalization.FashionMnist, null, 0));
    }

    [Fact]
    public void PairedLoaderAlignsABalancedTailSideWithAnInstanceHeadSide()
    {
        // Long-tailed: class 0 has 90 items, class 1..3 have 10 each.
        int n = 120;
        var labels = Enumerable.Range(0, n).Select(i => i < 90 ? 0 : 1 + (i - 90) / 10).ToArray();
        var src = new InMemoryImageSource(new byte[n * Shape.Size], Shape, labels, i => $"img {i}");
        using var paired = new PairedLoader(
            new BatchLoader(src, Samplers.ClassBalanced(labels, 1), 32, Norm, AugmentConfig.CropFlip, seed: 1),
            new BatchLoader(src, Samplers.Instance(labels, 2), 32, Norm, AugmentConfig.CropFlip, seed: 2));
        Assert.Equal(4, paired.BatchesPerEpoch);
        var tailCounts = new long[4];
        var headCounts = new long[4];
        int pairs = 0;
        for (int epoch = 0; epoch < 5; epoch++)
            foreach (var (t, h) in paired.Epoch(epoch))
            {
                using (t) using (h)
                {
                    Assert.Equal(t.Count, h.Count);
                    Assert.Equal(t.Images.shape, h.Images.shape);
                    foreach (var y in t.Labels.data<long>().ToArray()) tailCounts[y]++;
                    foreach (var y in h.Labels.data<long>().ToArray()) headCounts[y]++;
                    pairs++;
                }
            }
        Assert.Equal(20, pairs);
        double chi = tailCounts.Sum(o => (o - 150.0) * (o - 150.0) / 150.0); // 600 draws, uniform over 4 classes
        Assert.True(chi < 16.27, string.Join(",", tailCounts)); // df 3, 0.1%
        Assert.Equal([450, 50, 50, 50], headCounts);
        Assert.Throws<ArgumentException>(() => new PairedLoader(
            new BatchLoader(src, Samplers.Instance(labels, 1), 32, Norm, null, 1),
            new BatchLoader(src, Samplers.Instance(labels, 1), 16, Norm, null, 1)));
    }

    [Fact]
    public void PairedLoaderTrimsAFinalPartialBatch()
    {
        var src = Source();
        using var paired = new PairedLoader(
            new BatchLoader(src, Samplers.ClassBalanced(src.Labels, 1, length: 16), 6, Norm, null, 1),
            new BatchLoader(src, Samplers.Instance(src.Labels, 2), 6, Norm, null, 2));
        var sizes = new List<(int, int)>();
        foreach (var (t, h) in paired.Epoch(0)) using (t) using (h) sizes.Add((t.Count, h.Count));
        Assert.Equal([(6, 6), (6, 6), (4, 4)], sizes);
    }
}
