using H2T.Data;
using H2T.Evaluation;
using H2T.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>Plain forward over a loader (no fusion at test time), under eval mode and no_grad.</summary>
public static class Evaluator
{
    public static EvaluationResult Evaluate(Backbone backbone, ClassifierHead head, BatchLoader loader, int numClasses, ClassGroups groups)
    {
        backbone.eval();
        head.eval();
        var acc = new MetricAccumulator(numClasses);
        using var _ = no_grad();
        foreach (var batch in loader.Epoch(0))
        {
            using var b = batch;
            using var scope = NewDisposeScope();
            acc.Add(head.call(backbone.call(b.Images)), b.Labels);
        }
        return acc.Result(groups.Head, groups.Medium, groups.Tail);
    }

    /// <summary>Every index once, in order: evaluation needs no shuffling.</summary>
    public sealed class SequentialSampler(int count) : ISampler
    {
        public int Length => count;
        public int[] Indices(int epoch) => Enumerable.Range(0, count).ToArray();
    }

    public static BatchLoader TestLoader(DatasetSplits splits, int batchSize, Device device, int prefetch = 2) =>
        new(splits.Test, new SequentialSampler(splits.Test.Count), batchSize, splits.Norm, augment: null, seed: 0, prefetch: prefetch, device: device);
}
