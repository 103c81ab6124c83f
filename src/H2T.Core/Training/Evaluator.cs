using H2T.Runs;
using H2T.Data;
using H2T.Evaluation;
using H2T.Models;
using H2T.Settings;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>Plain forward over a loader (no fusion at test time), under eval mode and no_grad.</summary>
public static class Evaluator
{
    /// <summary>
    /// Evaluates <paramref name="checkpoint"/> on the test set of the data it was trained on, or of
    /// <paramref name="dataset"/> (another dataset with the same classes), read from <paramref name="dataPath"/> when
    /// the files are elsewhere; in <paramref name="precision"/> (default: the checkpoint's).
    /// </summary>
    public static CheckpointEvaluation EvaluateCheckpoint(string checkpoint, Device device, string? dataset = null,
        string? dataPath = null,
        ComputePrecision? precision = null, int batchSize = 256, TestTimeEnsemble? testTime = null)
    {
        var meta = Checkpoint.ReadMeta(checkpoint);
        var splits = DatasetCatalog.Load(CheckpointData.ForEvaluation(checkpoint, meta, dataset, dataPath));
        using var models = Checkpoint.Open(checkpoint, splits.Train.Shape.Channels, splits.NumClasses, precision);
        var (_, backbone, head) = models;
        backbone.to(device);
        head.to(device);
        using var loader = TestLoader(splits, batchSize, device);
        var result = testTime is null ? Evaluate(backbone, head, loader, splits.NumClasses, splits.Groups)
            : EvaluateEnsemble(backbone, head, loader, splits.NumClasses, splits.Groups, splits.Norm, testTime);
        return new CheckpointEvaluation(meta, splits, result, backbone.Precision,
            $"TorchSharp ({MixedPrecision.Name(backbone.Precision)})") { TestTime = testTime };
    }

    public static EvaluationResult Evaluate(Backbone backbone, ClassifierHead head, BatchLoader loader, int numClasses,
        ClassGroups groups) =>
        EvaluateHeads(backbone, [head], loader, numClasses, groups)[0];

    /// <summary>
    /// The model with <paramref name="testTime"/>'s ensemble: each loader batch (normalised by
    /// <paramref name="norm"/>) cut into its views, every view through backbone and head, the views' logits
    /// averaged, then the metrics of the averaged logits.
    /// </summary>
    public static EvaluationResult EvaluateEnsemble(Backbone backbone, ClassifierHead head, BatchLoader loader,
        int numClasses, ClassGroups groups, Normalization norm, TestTimeEnsemble testTime)
    {
        ArgumentNullException.ThrowIfNull(head);
        ArgumentNullException.ThrowIfNull(loader);
        ArgumentNullException.ThrowIfNull(testTime);
        return InferenceForward(backbone, forward =>
        {
            head.eval();
            var acc = new MetricAccumulator(numClasses);
            foreach (var batch in loader.Epoch(0))
            {
                using var b = batch;
                using var scope = NewDisposeScope();
                var views = testTime.ViewsOfNormalized(b.Images, norm);
                acc.Add(TestTimeEnsemble.MeanOfViews(views, v => head.call(forward.call(v))), b.Labels);
            }
            return acc.Result(groups.Head, groups.Medium, groups.Tail);
        });
    }

    /// <summary>One backbone pass for several classifiers that share it (a rho sweep): one result per head.</summary>
    public static EvaluationResult[] EvaluateHeads(Backbone backbone, IReadOnlyList<ClassifierHead> heads,
        BatchLoader loader, int numClasses, ClassGroups groups)
    {
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(loader);
        return InferenceForward(backbone, forward => Accumulate(heads, loader.Epoch(0), images => forward.call(images),
            numClasses, groups));
    }

    /// <summary>A loader's pooled features (with its labels, per batch) under the backbone's current BatchNorm state:
    /// what the heads would take, computed once (stage II's pooled source).</summary>
    internal static List<(Tensor X, Tensor Y)> PooledFeatures(Backbone backbone, BatchLoader loader,
        CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(loader);
        return InferenceForward(backbone, forward =>
        {
            var list = new List<(Tensor, Tensor)>();
            foreach (var batch in loader.Epoch(0))
            {
                using var b = batch;
                using var scope = NewDisposeScope();
                list.Add((ClassifierHead.Pool(forward.call(b.Images)).DetachFromDisposeScope(),
                    b.Labels.clone().DetachFromDisposeScope()));
                cancel.ThrowIfCancellationRequested();
            }
            return list;
        });
    }

    /// <summary>Runs <paramref name="work"/> with the backbone in eval mode under no_grad, on its BatchNorm-folded
    /// equivalent when it has one (eval mode makes BatchNorm an affine map: same outputs, fewer passes).</summary>
    static T InferenceForward<T>(Backbone backbone, Func<Backbone, T> work)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        backbone.eval();
        using var _ = no_grad();
        using var folded = backbone.FoldedForInference();
        return work(folded ?? backbone);
    }

    /// <summary>Several classifiers on feature maps computed before (stage II's feature cache): batches whose Images
    /// are
    /// the maps.</summary>
    internal static EvaluationResult[] EvaluateHeadsOnMaps(IReadOnlyList<ClassifierHead> heads, IEnumerable<Batch> maps,
        int numClasses, ClassGroups groups)
    {
        ArgumentNullException.ThrowIfNull(heads);
        using var _ = no_grad();
        return Accumulate(heads, maps, m => m, numClasses, groups);
    }

    static EvaluationResult[] Accumulate(IReadOnlyList<ClassifierHead> heads, IEnumerable<Batch> batches, Func<Tensor,
        Tensor> features,
        int numClasses, ClassGroups groups)
    {
        foreach (var h in heads) h.eval();
        var accs = heads.Select(_ => new MetricAccumulator(numClasses)).ToArray();
        foreach (var batch in batches)
        {
            using var b = batch;
            using var scope = NewDisposeScope();
            var f = features(b.Images);
            for (int k = 0; k < heads.Count; k++) accs[k].Add(heads[k].call(f), b.Labels);
        }
        return accs.Select(a => a.Result(groups.Head, groups.Medium, groups.Tail)).ToArray();
    }

    /// <summary>The validation split in order, or null when the data has none.</summary>
    public static BatchLoader? ValidationLoader(DatasetSplits splits, int batchSize, Device device, int prefetch = 2) =>
        splits.Validation is { } v
            ? new(v, new SequentialSampler(v.Count), batchSize, splits.Norm, augment: null, seed: 0, prefetch: prefetch,
                device: device)
            : null;

    /// <summary>Every index once, in order: evaluation needs no shuffling.</summary>
    public sealed class SequentialSampler(int count) : ISampler
    {
        public int Length => count;
        public int[] Indices(int epoch) => Enumerable.Range(0, count).ToArray();
    }

    public static BatchLoader TestLoader(DatasetSplits splits, int batchSize, Device device, int prefetch = 2) =>
        new(splits.Test, new SequentialSampler(splits.Test.Count), batchSize, splits.Norm, augment: null, seed: 0,
            prefetch: prefetch, device: device);
}
