using System.Globalization;
using H2T.Runs;
using H2T.Inference;
using ScottPlot;
using SkiaSharp;

namespace H2T.Reporting;

/// <summary>
/// The paper's Figure 4, drawn from an <see cref="EmbeddingProjection"/> (computed by <see cref="FeatureProjection"/>):
/// the test features of one head and one tail class on their two principal components, with the classifier's
/// decision boundary; panels side by side, one per run (e.g. rho = 0 and H2T), composed into one PNG.
/// </summary>
public static class EmbeddingPlot
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>One panel per projected run, composed side by side into <paramref name="png"/>.</summary>
    public static void Write(EmbeddingProjection projection, string png)
    {
        ArgumentNullException.ThrowIfNull(projection);
        if (projection.Panels.Count == 0) throw new ArgumentException("no runs to plot");
        Compose([.. projection.Panels.Select(p => Panel(p.Title, p.Points, p.Labels, p.Boundary, projection.ClassA,
            projection.ClassB, projection.ClassNames))], png);
    }

    static byte[] Panel(string title, float[,] pts, int[] ys, double[]? line, int a, int b, IReadOnlyList<string> names)
    {
        var plot = new Plot();
        foreach (var (cls, color) in new[] { (a, Colors.SteelBlue), (b, Colors.OrangeRed) })
        {
            var sel = Enumerable.Range(0, ys.Length).Where(i => ys[i] == cls).ToArray();
            var s = plot.Add.ScatterPoints(sel.Select(i => (double)pts[i, 0]).ToArray(), sel.Select(i => (double)pts[i,
                1]).ToArray());
            s.Color = color.WithAlpha(0.55);
            s.MarkerSize = 4;
            s.LegendText = $"{cls} {names[cls]}{(cls == a ? " (head)" : " (tail)")}";
        }
        double minX = Enumerable.Range(0, ys.Length).Min(i => pts[i, 0]), maxX = Enumerable.Range(0,
            ys.Length).Max(i => pts[i, 0]);
        double minY = Enumerable.Range(0, ys.Length).Min(i => pts[i, 1]), maxY = Enumerable.Range(0,
            ys.Length).Max(i => pts[i, 1]);
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
        plot.Axes.SetLimits(minX - 0.05 * (maxX - minX), maxX + 0.05 * (maxX - minX), minY - 0.05 * (maxY - minY),
            maxY + 0.05 * (maxY - minY));
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
