using System.Globalization;
using H2T.Data;
using H2T.Models;
using H2T.Training;
using ScottPlot;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Reporting;

/// <summary>
/// The paper's Figure 4, for any runs: the pooled test features of one head and one tail class, projected onto
/// their two principal components, with the classifier's decision boundary between the two classes in that plane
/// (exact for a linear classifier: the logit difference is affine in the features). Panels side by side, one per run
/// (e.g. rho = 0 and H2T), composed into one PNG.
/// </summary>
public static class EmbeddingPlot
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    sealed class IndexSampler(int[] indices) : ISampler
    {
        public int Length => indices.Length;
        public int[] Indices(int epoch) => indices;
    }

    /// <param name="runs">(panel title, checkpoint) pairs; all must share the data of the first.</param>
    /// <param name="classA">a head class</param>
    /// <param name="classB">a tail class</param>
    public static void Write(IReadOnlyList<(string Title, string Checkpoint)> runs, int classA, int classB, string png, Device device,
        string? dataPath = null, int maxPerClass = 500)
    {
        if (runs.Count == 0) throw new ArgumentException("no runs to plot");
        var meta0 = Checkpoint.ReadMeta(runs[0].Checkpoint);
        var data = StageTwoTrainer.DataConfigFor(runs[0].Checkpoint, meta0, dataPath, null) with { ValidationPerClass = 0 };
        var splits = DatasetCatalog.Load(data);
        foreach (var c in new[] { classA, classB })
            if (c < 0 || c >= splits.NumClasses) throw new ConfigException($"class {c}: expected 0..{splits.NumClasses - 1}");
        var labels = splits.Test.Labels;
        var idx = Enumerable.Range(0, labels.Count).Where(i => labels[i] == classA).Take(maxPerClass)
            .Concat(Enumerable.Range(0, labels.Count).Where(i => labels[i] == classB).Take(maxPerClass)).ToArray();
        using var loader = new BatchLoader(splits.Test, new IndexSampler(idx), 256, splits.Norm, augment: null, seed: 0, prefetch: 1, device: device);

        var panels = new List<byte[]>();
        foreach (var (title, ckpt) in runs)
        {
            using var models = Checkpoint.Open(ckpt, splits.Train.Shape.Channels, splits.NumClasses);
            var (_, backbone, head) = models;
            backbone.to(device);
            head.to(device);
            backbone.eval();
            head.eval();
            var (points, ys, line) = Project(backbone, head, loader, classA, classB);
            panels.Add(Panel(title, points, ys, line, classA, classB, splits.ClassNames));
        }
        Compose(panels, png);
    }

    /// <summary>2-D principal-component coordinates, labels, and the boundary g0 + g1 z1 + g2 z2 = 0 (null if not linear).</summary>
    static (float[,] Points, int[] Labels, double[]? Boundary) Project(Backbone backbone, ClassifierHead head, BatchLoader loader, int a, int b)
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

    static byte[] Panel(string title, float[,] pts, int[] ys, double[]? line, int a, int b, IReadOnlyList<string> names)
    {
        var plot = new Plot();
        foreach (var (cls, color) in new[] { (a, Colors.SteelBlue), (b, Colors.OrangeRed) })
        {
            var sel = Enumerable.Range(0, ys.Length).Where(i => ys[i] == cls).ToArray();
            var s = plot.Add.ScatterPoints(sel.Select(i => (double)pts[i, 0]).ToArray(), sel.Select(i => (double)pts[i, 1]).ToArray());
            s.Color = color.WithAlpha(0.55);
            s.MarkerSize = 4;
            s.LegendText = $"{cls} {names[cls]}{(cls == a ? " (head)" : " (tail)")}";
        }
        double minX = Enumerable.Range(0, ys.Length).Min(i => pts[i, 0]), maxX = Enumerable.Range(0, ys.Length).Max(i => pts[i, 0]);
        double minY = Enumerable.Range(0, ys.Length).Min(i => pts[i, 1]), maxY = Enumerable.Range(0, ys.Length).Max(i => pts[i, 1]);
        if (line is { } g && (Math.Abs(g[1]) > 1e-12 || Math.Abs(g[2]) > 1e-12))
        {
            // g0 + g1 x + g2 y = 0, drawn across the data's extent.
            var seg = Math.Abs(g[2]) > Math.Abs(g[1])
                ? plot.Add.Line(minX, -(g[0] + g[1] * minX) / g[2], maxX, -(g[0] + g[1] * maxX) / g[2])
                : plot.Add.Line(-(g[0] + g[2] * minY) / g[1], minY, -(g[0] + g[2] * maxY) / g[1], maxY);
            seg.Color = Colors.Black;
            seg.LineWidth = 2;
            seg.LegendText = "decision boundary";
        }
        plot.Axes.SetLimits(minX - 0.05 * (maxX - minX), maxX + 0.05 * (maxX - minX), minY - 0.05 * (maxY - minY), maxY + 0.05 * (maxY - minY));
        plot.Title(title);
        plot.XLabel("principal component 1");
        plot.YLabel("principal component 2");
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(620, 560, ImageFormat.Png);
    }

    static void Compose(IReadOnlyList<byte[]> panels, string png)
    {
        var images = panels.Select(p => SKBitmap.Decode(p)).ToList();
        try
        {
            using var canvasBitmap = new SKBitmap(images.Sum(i => i.Width), images.Max(i => i.Height));
            using (var canvas = new SKCanvas(canvasBitmap))
            {
                canvas.Clear(SKColors.White);
                int x = 0;
                foreach (var img in images) { canvas.DrawBitmap(img, x, 0); x += img.Width; }
            }
            using var encoded = canvasBitmap.Encode(SKEncodedImageFormat.Png, 100);
            AtomicFile.Write(png, s => encoded.SaveTo(s));
        }
        finally
        {
            foreach (var i in images) i.Dispose();
        }
    }
}
