using H2T.Data;
using H2T.Evaluation;
using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>Plain forward over a loader (no fusion at test time), under eval mode and no_grad.</summary>
public static class Evaluator
{
    public static EvaluationResult Evaluate(Backbone backbone, ClassifierHead head, BatchLoader loader, int numClasses, ClassGroups groups) =>
        EvaluateHeads(backbone, [head], loader, numClasses, groups)[0];

    /// <summary>One backbone pass for several classifiers that share it (a rho sweep): one result per head.</summary>
    public static EvaluationResult[] EvaluateHeads(Backbone backbone, IReadOnlyList<ClassifierHead> heads, BatchLoader loader, int numClasses, ClassGroups groups)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(heads);
        backbone.eval();
        foreach (var h in heads) h.eval();
        var accs = heads.Select(_ => new MetricAccumulator(numClasses)).ToArray();
        using var _ = no_grad();
        // Eval mode makes BatchNorm an affine map: fold it into the convolutions (same outputs, fewer passes).
        using var folded = backbone.FoldedForInference();
        var forward = folded ?? backbone;
        foreach (var batch in loader.Epoch(0))
        {
            using var b = batch;
            using var scope = NewDisposeScope();
            var features = forward.call(b.Images);
            for (int k = 0; k < heads.Count; k++) accs[k].Add(heads[k].call(features), b.Labels);
        }
        return accs.Select(a => a.Result(groups.Head, groups.Medium, groups.Tail)).ToArray();
    }

    /// <summary>The validation split in order, or null when the data has none.</summary>
    public static BatchLoader? ValidationLoader(DatasetSplits splits, int batchSize, Device device, int prefetch = 2) =>
        splits.Validation is { } v
            ? new(v, new SequentialSampler(v.Count), batchSize, splits.Norm, augment: null, seed: 0, prefetch: prefetch, device: device)
            : null;

    /// <summary>Every index once, in order: evaluation needs no shuffling.</summary>
    public sealed class SequentialSampler(int count) : ISampler
    {
        public int Length => count;
        public int[] Indices(int epoch) => Enumerable.Range(0, count).ToArray();
    }

    public static BatchLoader TestLoader(DatasetSplits splits, int batchSize, Device device, int prefetch = 2) =>
        new(splits.Test, new SequentialSampler(splits.Test.Count), batchSize, splits.Norm, augment: null, seed: 0, prefetch: prefetch, device: device);
}
