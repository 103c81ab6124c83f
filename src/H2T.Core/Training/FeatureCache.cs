using System.Diagnostics;
using H2T.Data;
using H2T.Models;
using H2T.Runs;
using H2T.Settings;
using Microsoft.Win32.SafeHandles;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// Stage II from cached maps (<c>feature_cache: maps</c>): the frozen backbone's final maps, computed once and read
/// back every epoch, so an epoch costs the classifiers' steps and no backbone pass.
/// <list type="bullet">
/// <item><b>What is cached:</b> the pre-pool maps (C x H x W) of <see cref="Views"/> augmented views (view v drawn with
/// the training augmentation from its own seed); test and
/// validation images one, without augmentation. A training set whose augmentation draws nothing has one view: every
/// view would be the same image.</item>
/// <item><b>Pairs are drawn as the exact path draws them:</b> the same tail and head samplers, seeds and batch
/// boundaries; each position of each epoch picks one of its image's views from (seed, epoch, side, position).</item>
/// <item><b>Shift-BN</b> (<c>shift_bn: on</c>) cannot follow the batches when no batch goes through the backbone. The
/// BatchNorm statistics are re-estimated once instead, as the population mean and variance over one epoch (or
/// <c>feature_cache_bn_batches</c> batches) of a side's sampler (PyTorch's cumulative average, momentum None), then
/// frozen; the features are computed with them in eval mode, and every checkpoint carries them.</item>
/// <item><b>Memory:</b> a file beside the run (deleted when the run ends) read back row by row; resident memory is
/// one batch. A map row is C x H x W values in the storage type: the backbone's own arithmetic (bf16 maps are stored
/// as bf16, fp32 as fp32, both losslessly), or bf16 when asked for (<c>feature_cache_storage</c>).</item>
/// </list>
/// </summary>
internal sealed class FeatureCache : IDisposable
{
    readonly SafeFileHandle file;
    readonly long[] rowShape;
    readonly IReadOnlyList<int> trainLabels;
    readonly int trainCount, seed;
    readonly long testStart, validationStart;
    readonly IReadOnlyList<int> testLabels;
    readonly IReadOnlyList<int>? validationLabels;

    FeatureCache(string path, SafeFileHandle file, long[] rowShape, ScalarType storage, int views, DatasetSplits splits,
        int seed)
    {
        Path = path;
        this.file = file;
        this.rowShape = rowShape;
        Storage = storage;
        Views = views;
        this.seed = seed;
        trainLabels = splits.Train.Labels;
        trainCount = splits.Train.Count;
        testLabels = splits.Test.Labels;
        validationLabels = splits.Validation?.Labels;
        testStart = (long)views * trainCount;
        validationStart = testStart + splits.Test.Count;
        RowBytes = rowShape.Aggregate(1L, (a, b) => a * b) * (storage == ScalarType.BFloat16 ? 2 : 4);
    }

    public string Path { get; }
    public ScalarType Storage { get; }
    public int Views { get; }
    /// <summary>Bytes per cached map (one image, one view).</summary>
    public long RowBytes { get; }
    /// <summary>Bytes written (the training views, the test and validation maps, as asked for).</summary>
    public long TotalBytes { get; private set; }
    public double BuildSeconds { get; private set; }

    /// <summary>The storage type for a run: the backbone's arithmetic, or bf16 when asked for.</summary>
    public static ScalarType StorageFor(StageTwoConfig config, ComputePrecision precision) =>
        config.FeatureCacheStorage == "bf16" || (config.FeatureCacheStorage == "auto" &&
            precision == ComputePrecision.Bf16)
            ? ScalarType.BFloat16 : ScalarType.Float32;

    /// <summary>
    /// Re-estimates the BatchNorm statistics if the run shifts them, then writes every map into a new file in
    /// <paramref name="folder"/>. Leaves the backbone in eval mode with the statistics it used.
    /// </summary>
    /// <param name="statistics">With shift-BN, the sampler whose batches BatchNorm is re-estimated on: the tail side's
    /// (what a rho = 0 member's backbone sees), the head side's, or none (keep the backbone's current
    /// statistics).</param>
    /// <param name="trainViews">Cache the training views (false: test and validation only).</param>
    /// <param name="evalSets">Cache the test and validation images (false: training views only).</param>
    /// <param name="name">Tells the files apart when a sweep has a cache per BatchNorm state.</param>
    public static FeatureCache Build(Backbone backbone, DatasetSplits splits, StageTwoConfig config, Device device,
        string folder,
        ITrainingObserver observer, CancellationToken cancel, Statistics statistics = Statistics.TailSide,
            bool trainViews = true, bool evalSets = true,
        string name = "")
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(splits);
        ArgumentNullException.ThrowIfNull(config);
        var clock = Stopwatch.StartNew();
        // The exact path's batch sizes (training views at the training batch, test and validation at the evaluation
        // batch), so a build never holds a larger batch than the exact path does: glibc keeps freed heap
        // (TorchRuntime's trim threshold), so a larger transient batch stays in the resident size.
        int batch = config.Optim.BatchSize, evalBatch = Math.Max(config.Optim.BatchSize, 256);
        if (config.ShiftBn && statistics != Statistics.Keep) ReestimateBatchNorm(backbone, splits, config, device,
            statistics == Statistics.HeadSide, cancel);
        backbone.eval();
        int views = splits.TrainAugment.Draws ? config.ViewsOrDefault : 1;
        var storage = StorageFor(config, backbone.Precision);
        using var folded = backbone.FoldedForInference();
        var forward = folded ?? backbone;
        var shape = MapShape(forward, splits, device);
        var path = System.IO.Path.Combine(folder, $"feature-cache-{Environment.ProcessId}{name}.tmp");
        long need = shape.Aggregate(1L, (a, b) => a * b) * (storage == ScalarType.BFloat16 ? 2 : 4)
                    * ((trainViews ? (long)views * splits.Train.Count : 0) + (evalSets ? splits.Test.Count +
                        (splits.Validation?.Count ?? 0) : 0));
        long free = new DriveInfo(System.IO.Path.GetFullPath(folder)).AvailableFreeSpace;
        if (need > free)
            throw new ConfigException(
                $"feature cache: {need / 1048576.0:F0} MiB needed in {folder}, {free / 1048576.0:F0} MiB free; " +
                                      "use fewer views (feature_cache_views), bf16 storage (feature_cache_storage: " +
                                          "bf16) or another --out", "feature_cache");
        var handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None,
            FileOptions.DeleteOnClose);
        var cache = new FeatureCache(path, handle, shape, storage, views, splits, config.Seed);
        try
        {
            var what = new List<string>();
            if (trainViews) what.Add($"{views} view(s) of {splits.Train.Count} training images");
            if (evalSets) what.Add($"{splits.Test.Count} test" + (splits.Validation is { } v ?
                $" + {v.Count} validation" : "") + " images");
            observer.Message(
                $"feature cache{(name.Length > 0 ? $" ({name.TrimStart('-')})" : "")}: {string.Join(" + ", what)}, " +
                             $"{cache.RowBytes} bytes per map ({string.Join("x", shape)} " +
                                 $"{(storage == ScalarType.BFloat16 ? "bf16" : "fp32")}), {need / 1048576.0:F0} MiB " +
                                 $"in {path}");
            for (int view = 0; trainViews && view < views; view++)
            {
                using var loader = new BatchLoader(splits.Train, new Evaluator.SequentialSampler(splits.Train.Count),
                    batch, splits.Norm,
                    splits.TrainAugment, Seeds.Derive(config.Seed, view, Seeds.CacheView), prefetch: config.Prefetch,
                        device: device);
                cache.Write(forward, loader, (long)view * splits.Train.Count, view, cancel);
            }
            if (evalSets)
            {
                using (var test = Evaluator.TestLoader(splits, evalBatch, device, config.Prefetch)) cache.Write(forward,
                    test, cache.testStart, 0, cancel);
                using var val = Evaluator.ValidationLoader(splits, evalBatch, device, config.Prefetch);
                if (val is not null) cache.Write(forward, val, cache.validationStart, 0, cancel);
            }
            cache.BuildSeconds = clock.Elapsed.TotalSeconds;
            cache.TotalBytes = need;
            return cache;
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    static long[] MapShape(Backbone forward, DatasetSplits splits, Device device)
    {
        var s = splits.Train.Shape;
        int size = splits.TrainAugment.RandomResizedCrop ? splits.TrainAugment.OutputSize : 0;
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        // The training maps' shape (a resized crop may change the size): one zero image through the network.
        var map = forward.call(zeros(1, s.Channels, size > 0 ? size : s.Height, size > 0 ? size : s.Width,
            device: device));
        return map.shape[1..];
    }

    /// <summary>Which batches BatchNorm's statistics are re-estimated on (with shift-BN).</summary>
    public enum Statistics { TailSide, HeadSide, Keep }

    /// <summary>
    /// BatchNorm's running statistics become the mean and (unbiased) variance of the batch statistics over one epoch of
    /// the tail sampler (or with <paramref name="headSide"/> the head sampler), with the training augmentation:
    /// momentum
    /// 1/(k+1) at batch k is PyTorch's cumulative average.
    /// </summary>
    static void ReestimateBatchNorm(Backbone backbone, DatasetSplits splits, StageTwoConfig config, Device device,
        bool headSide, CancellationToken cancel)
    {
        var bn = backbone.modules().OfType<BatchNorm>().ToList();
        if (bn.Count == 0) return;
        var momenta = bn.Select(b => b.momentum).ToArray();
        var tail = new BatchLoader(splits.Train,
            Samplers.Create(config.TailSampler, splits.Train.Labels, Seeds.Derive(config.Seed, 0, Seeds.TailSampler),
                splits.Train.Count),
            config.Optim.BatchSize, splits.Norm, splits.TrainAugment, Seeds.Derive(config.Seed, 0,
                Seeds.CacheBatchNorm), prefetch: config.Prefetch, device: device);
        var head = new BatchLoader(splits.Train,
            Samplers.Create(config.HeadSampler, splits.Train.Labels, Seeds.Derive(config.Seed, 0, Seeds.HeadSampler),
                splits.Train.Count),
            config.Optim.BatchSize, splits.Norm, splits.TrainAugment, Seeds.Derive(config.Seed, 0,
                Seeds.CacheBatchNormHead), prefetch: config.Prefetch, device: device);
        try
        {
            foreach (var b in bn) b.reset_running_stats();
            backbone.train();
            using var _ = no_grad();
            int k = 0;
            void Forward(Batch b)
            {
                using var scope = NewDisposeScope();
                foreach (var m in bn) m.momentum = 1.0 / (k + 1);
                backbone.call(b.Images);
                k++;
            }
            int limit = config.FeatureCacheBnBatches > 0 ? config.FeatureCacheBnBatches : int.MaxValue;
            foreach (var b in (headSide ? head : tail).Epoch(0))
            {
                using (b) Forward(b);
                cancel.ThrowIfCancellationRequested();
                if (k >= limit) break;
            }
        }
        finally
        {
            tail.Dispose();
            head.Dispose();
            for (int i = 0; i < bn.Count; i++) bn[i].momentum = momenta[i];
            backbone.eval();
        }
    }

    /// <summary>A loader's maps from <paramref name="firstRow"/> on. A view's loader is read at epoch = view (its seed
    /// differs per view too); test and validation at 0.</summary>
    void Write(Backbone forward, BatchLoader loader, long firstRow, int epoch, CancellationToken cancel)
    {
        using var _ = no_grad();
        foreach (var batch in loader.Epoch(epoch))
        {
            using var b = batch;
            using var scope = NewDisposeScope();
            var maps = forward.call(b.Images).to(Storage).contiguous().cpu();
            if (!maps.shape.AsSpan(1).SequenceEqual(rowShape))
                throw new DataFormatException(
                    $"feature cache: {loader.Source.Describe(b.Indices[0])} gives maps of " +
                    $"{string.Join("x", maps.shape[1..])}, " +
                                              $"the training views {string.Join("x", rowShape)} (test images at " +
                                                  $"another size than the training crops?)");
            // Sequential samplers: the batch is a run of consecutive rows.
            RandomAccess.Write(file, maps.bytes, (firstRow + b.Indices[0]) * RowBytes);
            cancel.ThrowIfCancellationRequested();
        }
    }

    /// <summary>The maps of <paramref name="rows"/> (in order) as one float32 N x C x H x W tensor on <paramref
    /// name="device"/>.</summary>
    Tensor Read(long[] rows, Device device)
    {
        // Pooled: a batch of maps is a large-object-heap array, and a fresh one per batch grows the process between
        // full collections (measured: 2 GiB peak against 1 GiB for the exact path).
        int length = checked((int)(rows.Length * RowBytes));
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            for (int k = 0; k < rows.Length; k++)
            {
                // Consecutive rows (test, validation) are read in one call.
                int run = 1;
                while (k + run < rows.Length && rows[k + run] == rows[k] + run) run++;
                var span = buffer.AsSpan((int)(k * RowBytes), (int)(run * RowBytes));
                if (RandomAccess.Read(file, span, rows[k] * RowBytes) != span.Length)
                    throw new IOException($"{Path}: short read at row {rows[k]}");
                k += run - 1;
            }
            using var scope = NewDisposeScope();
            var t = empty([rows.Length, .. rowShape], Storage);
            t.bytes = buffer.AsSpan(0, length);
            return t.to(device).to(ScalarType.Float32).MoveToOuterDisposeScope();
        }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>One epoch of training batches as the exact path pairs them (<see cref="StageTwoData"/>): tail batches
    /// of
    /// the tail sampler, and with <paramref name="fuse"/> head batches beside them, trimmed to the shorter. Each
    /// <see cref="Batch"/>'s Images are the cached feature maps.</summary>
    /// <param name="readHead">With <paramref name="fuse"/>: read the head side's maps too (false: the tail side of the
    /// pairs only, for rho = 0 members beside fused ones).</param>
    public IEnumerable<BatchPair> Epoch(ISampler tailSampler, ISampler headSampler, int batchSize, int epoch, bool fuse,
        Device device, bool readHead = true, bool readTail = true)
    {
        var tail = tailSampler.Indices(epoch);
        var head = fuse ? headSampler.Indices(epoch) : null;
        int batches = (tail.Length + batchSize - 1) / batchSize;
        if (head is not null) batches = Math.Min(batches, (head.Length + batchSize - 1) / batchSize);
        for (int b = 0; b < batches; b++)
        {
            int start = b * batchSize;
            int n = Math.Min(batchSize, tail.Length - start);
            if (head is not null) n = Math.Min(n, head.Length - start);
            // Reading the head side alone (readTail false) puts it first.
            var t = readTail ? Side(tail, start, n, epoch, Seeds.CacheTailPick, device) : Side(head!, start, n, epoch,
                Seeds.CacheHeadPick, device);
            Batch? h = null;
            try { if (head is not null && readHead && readTail) h = Side(head, start, n, epoch, Seeds.CacheHeadPick,
                device); }
            catch { t.Dispose(); throw; }
            yield return new BatchPair(t, h);
        }
    }

    Batch Side(int[] order, int start, int n, int epoch, int stream, Device device)
    {
        var idx = order.AsSpan(start, n).ToArray();
        var rows = new long[n];
        int pick = Seeds.Derive(seed, epoch, stream);
        for (int k = 0; k < n; k++)
        {
            if ((uint)idx[k] >= (uint)trainCount) throw new InvalidOperationException(
                $"sampler produced index {idx[k]}, outside the training set ({trainCount})");
            int view = Views == 1 ? 0 : Seeds.Derive(pick, start + k, 0) % Views;
            rows[k] = (long)view * trainCount + idx[k];
        }
        using var scope = NewDisposeScope();
        var maps = Read(rows, device);
        var labels = tensor(idx.Select(i => (long)trainLabels[i]).ToArray()).to(device);
        return new Batch(maps.DetachFromDisposeScope(), labels.DetachFromDisposeScope(), idx);
    }

    /// <summary>The test (or validation) maps in order, in batches, as <see cref="Batch"/>es of maps.</summary>
    public IEnumerable<Batch> Evaluation(bool validation, int batchSize, Device device)
    {
        var labels = validation ? validationLabels ?? throw new InvalidOperationException("no validation split") :
            testLabels;
        long first = validation ? validationStart : testStart;
        for (int start = 0; start < labels.Count; start += batchSize)
        {
            int n = Math.Min(batchSize, labels.Count - start);
            var rows = Enumerable.Range(0, n).Select(k => first + start + k).ToArray();
            using var scope = NewDisposeScope();
            var maps = Read(rows, device);
            var y = tensor(Enumerable.Range(start, n).Select(i => (long)labels[i]).ToArray()).to(device);
            yield return new Batch(maps.DetachFromDisposeScope(), y.DetachFromDisposeScope(), Enumerable.Range(start,
                n).ToArray());
        }
    }

    public bool HasValidation => validationLabels is not null;

    public void Dispose() => file.Dispose();
}
