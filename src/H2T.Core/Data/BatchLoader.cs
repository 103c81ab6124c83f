using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using static TorchSharp.torch;

namespace H2T.Data;

/// <summary>One batch: float32 N,C,H,W normalised images, int64 N labels and the source indices. The consumer
/// disposes it; its tensors belong to no dispose scope.</summary>
public sealed class Batch : IDisposable
{
    public Batch(Tensor images, Tensor labels, int[] indices)
    {
        Images = images;
        Labels = labels;
        Indices = indices;
    }

    public Tensor Images { get; }
    public Tensor Labels { get; }
    public int[] Indices { get; }
    public int Count => Indices.Length;

    /// <summary>The first <paramref name="n"/> items as a new batch (fresh tensors); this batch is unchanged.</summary>
    public Batch Take(int n)
    {
        if (n < 0 || n > Count) throw new ArgumentOutOfRangeException(nameof(n), n, $"batch has {Count} items");
        using var scope = NewDisposeScope(); // the narrow views die here; only the clones leave
        var images = Images.narrow(0, 0, n).clone().DetachFromDisposeScope();
        var labels = Labels.narrow(0, 0, n).clone().DetachFromDisposeScope();
        return new Batch(images, labels, Indices[..n]);
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}

/// <summary>
/// Batches from a source in sampler order. A batch is assembled in parallel into one byte buffer (random crop with
/// zero padding as row copies, flips as row reversals), turned into ONE uint8 tensor, then converted, optionally
/// resampled (random-resized-crop, batched through affine_grid + grid_sample) and normalised with tensor ops.
/// A background task prefetches up to <c>prefetch</c> batches (pixels only; tensors are made on the consumer's
/// thread). All randomness comes from (seed, epoch, batch, item), so batches do not depend on thread scheduling or
/// on prefetching.
/// </summary>
public sealed class BatchLoader : IDisposable
{
    const long AugmentSalt = 0xa06;
    readonly IImageSource source;
    readonly ISampler sampler;
    readonly AugmentConfig augment;
    readonly int seed, prefetch;
    readonly bool dropLast;
    readonly Device device;
    readonly Tensor scale, shift; // x * scale - shift == (x/255 - mean) / std

    public BatchLoader(IImageSource source, ISampler sampler, int batchSize, Normalization norm, AugmentConfig? augment,
        int seed, bool dropLast = false, int prefetch = 2, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(norm);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize,
            "batch size must be >= 1");
        if (prefetch < 0) throw new ArgumentOutOfRangeException(nameof(prefetch), prefetch, "prefetch must be >= 0");
        norm.Validate(source.Shape.Channels);
        this.augment = augment ?? AugmentConfig.None;
        if (this.augment.RandomCrop && this.augment.Padding < 0)
            throw new ArgumentOutOfRangeException(nameof(augment), this.augment.Padding, "crop padding must be >= 0");
        if (this.augment.RandomCrop && this.augment.RandomResizedCrop)
            throw new ArgumentException("choose either RandomCrop (with padding) or RandomResizedCrop, not both");
        if (this.augment.RandomResizedCrop && this.augment.OutputSize < 1)
            throw new ArgumentException("RandomResizedCrop needs OutputSize >= 1");
        if (!this.augment.RandomResizedCrop && this.augment.OutputSize > 0 &&
            (this.augment.OutputSize != source.Shape.Height || this.augment.OutputSize != source.Shape.Width))
            throw new ArgumentException(
                $"OutputSize {this.augment.OutputSize} differs from the source's {source.Shape}: only " +
                $"RandomResizedCrop resizes");
        this.source = source;
        this.sampler = sampler;
        this.seed = seed;
        this.dropLast = dropLast;
        this.prefetch = prefetch;
        this.device = device ?? CPU;
        BatchSize = batchSize;
        var (c, h, w) = source.Shape;
        OutputShape = this.augment.RandomResizedCrop ? new ImageShape(c, this.augment.OutputSize,
            this.augment.OutputSize) : source.Shape;
        int full = sampler.Length / batchSize, rest = sampler.Length % batchSize;
        BatchesPerEpoch = full + (!dropLast && rest > 0 ? 1 : 0);
        if (BatchesPerEpoch == 0)
            throw new ArgumentException($"sampler length {sampler.Length} gives no batch of {batchSize} with dropLast");
        using (NewDisposeScope())
        {
            var (s, m) = norm.ForBytes();
            scale = tensor(s).reshape(1, c, 1, 1).to(this.device).DetachFromDisposeScope();
            shift = tensor(m).reshape(1, c, 1, 1).to(this.device).DetachFromDisposeScope();
        }
    }

    public int BatchSize { get; }
    public int BatchesPerEpoch { get; }
    /// <summary>Shape of one image in a batch (the source's, or OutputSize square with RandomResizedCrop).</summary>
    public ImageShape OutputShape { get; }
    public IImageSource Source => source;

    /// <summary>The batches of one epoch, in order. Dispose each <see cref="Batch"/>; stopping early is fine.</summary>
    public IEnumerable<Batch> Epoch(int epoch)
    {
        var indices = sampler.Indices(epoch);
        foreach (var i in indices)
            if ((uint)i >= (uint)source.Count)
                throw new InvalidOperationException(
                    $"sampler produced index {i}, outside the source (count {source.Count})");
        return prefetch == 0 ? Sequential(indices, epoch) : Prefetched(indices, epoch);
    }

    IEnumerable<Batch> Sequential(int[] indices, int epoch)
    {
        for (int b = 0; b < BatchesPerEpoch; b++) yield return Assemble(indices, epoch, b);
    }

    IEnumerable<Batch> Prefetched(int[] indices, int epoch)
    {
        // The producer only decodes, crops and flips into managed buffers; the tensors are made on the consumer's
        // thread. A torch op on a second thread starts a second OpenMP team that fights the training step for the
        // same cores (measured: docs/performance.md).
        using var queue = new BlockingCollection<RawBatch>(prefetch);
        using var cts = new CancellationTokenSource();
        ExceptionDispatchInfo? failure = null;
        var producer = Task.Run(() =>
        {
            try
            {
                for (int b = 0; b < BatchesPerEpoch && !cts.IsCancellationRequested; b++)
                {
                    var raw = AssembleRaw(indices, epoch, b);
                    try { queue.Add(raw, cts.Token); }
                    catch (OperationCanceledException) { return; }
                }
            }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
            finally { queue.CompleteAdding(); }
        });
        try
        {
            foreach (var raw in queue.GetConsumingEnumerable()) yield return ToBatch(raw);
            producer.Wait();
            failure?.Throw();
        }
        finally
        {
            // Early exit by the consumer: stop the producer; raw batches are managed memory, nothing to free.
            cts.Cancel();
            try { producer.Wait(); } catch (AggregateException) { }
        }
    }

    /// <summary>Assembles batch <paramref name="batchIndex"/> of <paramref name="epoch"/> from the sampler's
    /// order.</summary>
    public Batch Assemble(int[] epochIndices, int epoch, int batchIndex) => ToBatch(AssembleRaw(epochIndices, epoch,
        batchIndex));

    /// <summary>A batch before it becomes tensors: pixels (N,C,H,W bytes), labels, crop matrices, indices.</summary>
    sealed record RawBatch(byte[] Pixels, long[] Labels, float[]? Thetas, int[] Indices);

    RawBatch AssembleRaw(int[] epochIndices, int epoch, int batchIndex)
    {
        ArgumentNullException.ThrowIfNull(epochIndices);
        int start = batchIndex * BatchSize;
        int n = Math.Min(BatchSize, epochIndices.Length - start);
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(batchIndex), batchIndex, "past the end of the epoch");
        var idx = epochIndices.AsSpan(start, n).ToArray();
        var shape = source.Shape;
        int size = shape.Size;
        var buffer = new byte[(long)n * size];
        var thetas = augment.RandomResizedCrop ? new float[n * 6] : null;
        try
        {
            Parallel.For(0, n, k => AssembleItem(k));
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // Report the first failing image itself (it names its file), not the parallel wrapper.
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }

        void AssembleItem(int k)
        {
            var rng = new DetRandom(AugmentSalt, seed, epoch, batchIndex, k);
            var dst = buffer.AsSpan(k * size, size);
            if (augment.RandomCrop && augment.Padding > 0)
            {
                var scratch = ArrayPool<byte>.Shared.Rent(size);
                try
                {
                    Read(idx[k], scratch.AsSpan(0, size));
                    int p = augment.Padding;
                    CropWithPadding(scratch.AsSpan(0, size), dst, shape, rng.Next(2 * p + 1) - p,
                        rng.Next(2 * p + 1) - p);
                }
                finally { ArrayPool<byte>.Shared.Return(scratch); }
            }
            else Read(idx[k], dst);
            bool flip = augment.HorizontalFlip && rng.Next(2) == 1;
            if (thetas is not null) ResizedCropTheta(ref rng, shape, flip, thetas.AsSpan(k * 6, 6));
            else if (flip) FlipRows(dst, shape);
        }

        var labels = new long[n];
        for (int k = 0; k < n; k++) labels[k] = source.Labels[idx[k]];
        return new RawBatch(buffer, labels, thetas, idx);
    }

    Batch ToBatch(RawBatch raw)
    {
        var shape = source.Shape;
        int n = raw.Indices.Length;
        using var scope = NewDisposeScope();
        var x = tensor(raw.Pixels, [n, shape.Channels, shape.Height,
            shape.Width]).to(device).to_type(ScalarType.Float32);
        if (raw.Thetas is not null)
        {
            var theta = tensor(raw.Thetas, [n, 2, 3]).to(device);
            var grid = nn.functional.affine_grid(theta, [n, shape.Channels, OutputShape.Height, OutputShape.Width],
                align_corners: false);
            x = nn.functional.grid_sample(x, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border,
                align_corners: false);
        }
        x = x.mul_(scale).sub_(shift);
        var y = tensor(raw.Labels).to(device);
        return new Batch(x.DetachFromDisposeScope(), y.DetachFromDisposeScope(), raw.Indices);
    }

    void Read(int index, Span<byte> dst)
    {
        try { source.ReadInto(index, dst); }
        catch (Exception e) when (e is not DataFormatException and not FileNotFoundException)
        {
            throw new DataFormatException($"{source.Describe(index)}: {e.Message}", e);
        }
    }

    /// <summary>Output pixel (y, x) = input (y + dy, x + dx), zero outside: a crop at offset (dy+p, dx+p) of the
    /// zero-padded image, done as one span copy per row.</summary>
    internal static void CropWithPadding(ReadOnlySpan<byte> src, Span<byte> dst, ImageShape shape, int dy, int dx)
    {
        var (c, h, w) = shape;
        dst.Clear();
        int x0 = Math.Max(0, -dx), x1 = Math.Min(w, w - dx); // output columns that read inside the image
        if (x1 <= x0) return;
        int len = x1 - x0;
        for (int ch = 0; ch < c; ch++)
        {
            int plane = ch * h * w;
            for (int y = Math.Max(0, -dy); y < Math.Min(h, h - dy); y++)
                src.Slice(plane + (y + dy) * w + x0 + dx, len).CopyTo(dst.Slice(plane + y * w + x0, len));
        }
    }

    internal static void FlipRows(Span<byte> chw, ImageShape shape)
    {
        int rows = shape.Channels * shape.Height;
        for (int r = 0; r < rows; r++) chw.Slice(r * shape.Width, shape.Width).Reverse();
    }

    /// <summary>torchvision's RandomResizedCrop parameters (scale 0.08..1, log-uniform ratio 3/4..4/3, 10 tries, then
    /// a clamped center crop) as an affine_grid matrix in normalised coordinates (align_corners false).</summary>
    static void ResizedCropTheta(ref DetRandom rng, ImageShape shape, bool flip, Span<float> theta)
    {
        int H = shape.Height, W = shape.Width;
        double area = (double)H * W, logLo = Math.Log(3.0 / 4), logHi = Math.Log(4.0 / 3);
        int ch = 0, cw = 0, top = 0, left = 0;
        bool found = false;
        for (int attempt = 0; attempt < 10 && !found; attempt++)
        {
            double target = area * (0.08 + rng.NextDouble() * 0.92);
            double ratio = Math.Exp(logLo + rng.NextDouble() * (logHi - logLo));
            cw = (int)Math.Round(Math.Sqrt(target * ratio));
            ch = (int)Math.Round(Math.Sqrt(target / ratio));
            if (cw > 0 && cw <= W && ch > 0 && ch <= H)
            {
                top = rng.Next(H - ch + 1);
                left = rng.Next(W - cw + 1);
                found = true;
            }
        }
        if (!found)
        {
            double inRatio = (double)W / H;
            if (inRatio < 3.0 / 4) { cw = W; ch = (int)Math.Round(W / (3.0 / 4)); }
            else if (inRatio > 4.0 / 3) { ch = H; cw = (int)Math.Round(H * (4.0 / 3)); }
            else { cw = W; ch = H; }
            top = (H - ch) / 2;
            left = (W - cw) / 2;
        }
        float ax = (float)cw / W, bx = (float)(2.0 * left + cw) / W - 1f;
        float ay = (float)ch / H, by = (float)(2.0 * top + ch) / H - 1f;
        theta[0] = flip ? -ax : ax; theta[1] = 0; theta[2] = bx;
        theta[3] = 0; theta[4] = ay; theta[5] = by;
    }

    public void Dispose()
    {
        scale.Dispose();
        shift.Dispose();
    }
}

/// <summary>H2T stage II: a tail side (its own sampler, e.g. class-balanced) and a head side (instance sampling)
/// yielding aligned batches of equal size. Owns both loaders. Give the two sides different seeds, or their crops
/// and flips would be drawn identically item by item.</summary>
public sealed class PairedLoader : IDisposable
{
    readonly BatchLoader tail, head;

    public PairedLoader(BatchLoader tail, BatchLoader head)
    {
        ArgumentNullException.ThrowIfNull(tail);
        ArgumentNullException.ThrowIfNull(head);
        if (tail.BatchSize != head.BatchSize)
            throw new ArgumentException(
                $"tail batch size {tail.BatchSize} differs from head batch size {head.BatchSize}");
        if (tail.OutputShape != head.OutputShape)
            throw new ArgumentException($"tail images {tail.OutputShape} differ from head images {head.OutputShape}");
        this.tail = tail;
        this.head = head;
    }

    /// <summary>The shorter side's batch count: a pair needs both.</summary>
    public int BatchesPerEpoch => Math.Min(tail.BatchesPerEpoch, head.BatchesPerEpoch);

    public IEnumerable<(Batch Tail, Batch Head)> Epoch(int epoch)
    {
        int batches = BatchesPerEpoch;
        using var t = tail.Epoch(epoch).GetEnumerator();
        using var h = head.Epoch(epoch).GetEnumerator();
        for (int b = 0; b < batches && t.MoveNext(); b++)
        {
            Batch tb = t.Current;
            bool more;
            try { more = h.MoveNext(); }
            catch { tb.Dispose(); throw; } // a head-side read error must not leak the tail batch
            if (!more) { tb.Dispose(); break; }
            Batch hb = h.Current;
            if (tb.Count != hb.Count)
            {
                // Only a final partial batch can differ: trim the longer one so the pair stays aligned.
                int n = Math.Min(tb.Count, hb.Count);
                if (tb.Count > n) { var cut = tb.Take(n); tb.Dispose(); tb = cut; }
                else { var cut = hb.Take(n); hb.Dispose(); hb = cut; }
            }
            yield return (tb, hb);
        }
    }

    public void Dispose()
    {
        tail.Dispose();
        head.Dispose();
    }
}
