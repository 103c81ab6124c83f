using H2T.Runs;
using H2T.Data;
using H2T.Models;
using H2T.Settings;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Inference;

/// <summary>One run's test features of two classes in 2-D, with its decision boundary g0 + g1 z1 + g2 z2 = 0 (null
/// when the classifier is not linear).</summary>
public sealed record EmbeddingPanel(string Title, float[,] Points, int[] Labels, double[]? Boundary);

/// <summary>The panels of the paper's Figure 4, ready to draw (Reporting.EmbeddingPlot draws them).</summary>
public sealed record EmbeddingProjection(IReadOnlyList<EmbeddingPanel> Panels, int ClassA, int ClassB,
    IReadOnlyList<string> ClassNames);

/// <summary>
/// The pooled test features of one head and one tail class through each run's backbone, projected onto their two
/// principal components, with the classifier's decision boundary between the two classes in that plane (exact for a
/// linear classifier: the logit difference is affine in the features).
/// </summary>
public static class FeatureProjection
{
    sealed class IndexSampler(int[] indices) : ISampler
    {
        public int Length => indices.Length;
        public int[] Indices(int epoch) => indices;
    }

    /// <param name="runs">(panel title, checkpoint) pairs; all must share the data of the first.</param>
    /// <param name="classA">a head class</param>
    /// <param name="classB">a tail class</param>
    public static EmbeddingProjection Compute(IReadOnlyList<(string Title, string Checkpoint)> runs, int classA,
        int classB, Device device,
        string? dataPath = null, int maxPerClass = 500)
    {
        if (runs.Count == 0) throw new ArgumentException("no runs to plot");
        var meta0 = Checkpoint.ReadMeta(runs[0].Checkpoint);
        var data = CheckpointData.Resolve(runs[0].Checkpoint, meta0, dataPath, null) with { ValidationPerClass = 0 };
        var splits = DatasetCatalog.Load(data);
        foreach (var c in new[] { classA, classB })
            if (c < 0 ||
                c >= splits.NumClasses) throw new ConfigException($"class {c}: expected 0..{splits.NumClasses - 1}");
        var labels = splits.Test.Labels;
        var idx = Enumerable.Range(0, labels.Count).Where(i => labels[i] == classA).Take(maxPerClass)
            .Concat(Enumerable.Range(0, labels.Count).Where(i => labels[i] == classB).Take(maxPerClass)).ToArray();
        using var loader = new BatchLoader(splits.Test, new IndexSampler(idx), 256, splits.Norm, augment: null, seed: 0,
            prefetch: 1, device: device);

        var panels = new List<EmbeddingPanel>();
        foreach (var (title, ckpt) in runs)
        {
            using var models = Checkpoint.Open(ckpt, splits.Train.Shape.Channels, splits.NumClasses);
            var (_, backbone, head) = models;
            backbone.to(device);
            head.to(device);
            backbone.eval();
            head.eval();
            var (points, ys, line) = Project(backbone, head, loader, classA, classB);
            panels.Add(new EmbeddingPanel(title, points, ys, line));
        }
        return new EmbeddingProjection(panels, classA, classB, [.. splits.ClassNames]);
    }

    /// <summary>2-D principal-component coordinates, labels, and the boundary g0 + g1 z1 + g2 z2 = 0 (null if not
    /// linear).</summary>
    static (float[,] Points, int[] Labels, double[]? Boundary) Project(Backbone backbone, ClassifierHead head,
        BatchLoader loader, int a, int b)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var feats = new List<Tensor>();
        var ys = new List<int>();
        foreach (var batch in loader.Epoch(0))
        {
            using var bt = batch;
            feats.Add(backbone.call(bt.Images).mean([2L, 3L]).cpu());
            ys.AddRange(bt.Labels.cpu().data<long>().Select(v => (int)v));
        }
        var x = cat(feats, 0).to_type(ScalarType.Float64);
        var mean = x.mean([0L], keepdim: true);
        var (_, _, vh) = linalg.svd(x - mean, fullMatrices: false);
        var basis = vh.narrow(0, 0, 2).t();              // C x 2
        var z = ((x - mean).matmul(basis)).to_type(ScalarType.Float32).contiguous();
        var pts = new float[z.shape[0], 2];
        var flat = z.data<float>().ToArray();
        for (int i = 0; i < pts.GetLength(0); i++) { pts[i, 0] = flat[2 * i]; pts[i, 1] = flat[2 * i + 1]; }
        double[]? line = null;
        if (head is LinearHead lin)
        {
            var w = lin.Fc.weight!.cpu().to_type(ScalarType.Float64);
            var bias = lin.Fc.bias!.cpu().to_type(ScalarType.Float64);
            var d = w[a] - w[b];
            var g0 = (d.dot(mean.squeeze(0)) + bias[a] - bias[b]).item<double>();
            var g = d.matmul(basis);
            line = [g0, g[0].item<double>(), g[1].item<double>()];
        }
        return (pts, ys.ToArray(), line);
    }
}
