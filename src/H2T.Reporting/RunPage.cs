using System.Globalization;
using System.Net;
using System.Text;
using H2T.Data;
using H2T.Evaluation;
using H2T.Runs;
using H2T.Settings;
using SkiaSharp;

namespace H2T.Reporting;

/// <summary>
/// One HTML page of runs, self-contained (styles inline, images as data URIs), for <c>h2t report --html</c> and
/// <c>h2t serve --runs</c>. For each run it shows:
/// <list type="bullet">
/// <item>the Head / Medium / Tail / All table;</item>
/// <item>per-class accuracy against training count (an inline SVG);</item>
/// <item>the confusion matrix as a heat map;</item>
/// <item>a gallery of the tail classes' misclassified test images, each captioned with what it was taken for.</item>
/// </list>
/// With two runs or more on the same test set, each later run is set against the first (rho = 0 against H2T, say):
/// the images it fixed and the ones it broke. Per-image predictions come from each run's test-predictions.json, and
/// the images from the run's own test set.
/// </summary>
public static class RunPage
{
    /// <summary>Most images shown per gallery.</summary>
    public const int GalleryLimit = 40;

    sealed record Run(string Name, string Path, RunMetrics Metrics, EvaluationResult? Final, ImagePredictions? Images,
        CheckpointMeta? Meta, DatasetSplits? Splits);

    /// <param name="uploadForm">Add a form that posts an image to /v1/predict on the page's own server (h2t
    /// serve).</param>
    public static string Build(IReadOnlyList<string> runDirs, string title = "H2T.NET runs", bool uploadForm = false,
        string? dataPath = null)
    {
        ArgumentNullException.ThrowIfNull(runDirs);
        if (runDirs.Count == 0) throw new ConfigException("no run folders given");
        var data = new Dictionary<string, DatasetSplits>();
        var runs = runDirs.Select(d => Load(d, data, dataPath)).ToList();
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture,
            $"<!DOCTYPE html><html lang=\"en\"><head><meta " +
            $"charset=\"utf-8\"><title>{E(title)}</title><style>{Style}</style></head><body>");
        html.Append(CultureInfo.InvariantCulture, $"<h1>{E(title)}</h1>");
        if (uploadForm) html.Append(UploadForm);
        html.Append(
            "<h2>Head / Medium / Tail / All</h2><table " +
            "id=\"runs-table\"><tr><th>run</th><th>Head</th><th>Medium</th><th>Tail</th><th>All</th><th>ECE</th>" +
            "<th>epochs</th></tr>");
        foreach (var r in runs)
        {
            var f = r.Metrics.Final;
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"run-row\"><td>{E(r.Name)}</td>{Cell(f?.Head)}{Cell(f?.Medium)}{Cell(f?.Tail)}" +
                $"{Cell(f?.Top1)}{Cell(f?.Ece)}<td>{r.Metrics.Epochs.Count}</td></tr>");
        }
        html.Append("</table>");
        foreach (var r in runs) html.Append(Section(r));
        if (runs.Count > 1) html.Append(Comparisons(runs));
        html.Append("</body></html>");
        return html.ToString();
    }

    /// <summary>Writes <see cref="Build"/>'s page atomically.</summary>
    public static void Write(string path, IReadOnlyList<string> runDirs, string title = "H2T.NET runs",
        string? dataPath = null)
    {
        var page = Build(runDirs, title, uploadForm: false, dataPath);
        AtomicFile.Write(path, s => s.Write(Encoding.UTF8.GetBytes(page)));
    }

    /// <summary>The run folders under <paramref name="root"/> (itself included): folders with a metrics.json, in name
    /// order.</summary>
    public static IReadOnlyList<string> Find(string root)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{root}: no such folder of runs");
        return [.. Directory.EnumerateFiles(root, "metrics.json",
            SearchOption.AllDirectories).Select(f =>
            System.IO.Path.GetDirectoryName(f)!).Order(StringComparer.Ordinal)];
    }

    static Run Load(string dir, Dictionary<string, DatasetSplits> data, string? dataPath)
    {
        var folder = new RunFolder(dir);
        if (!File.Exists(folder.MetricsFile)) throw new ConfigException($"{dir}: not a run folder (no metrics.json)");
        var metrics = folder.ReadMetrics();
        var final = folder.ReadFinalEval();
        var images = folder.ReadTestPredictions();
        CheckpointMeta? meta = File.Exists(folder.LastCheckpoint) ? Checkpoint.ReadMeta(folder.LastCheckpoint) : null;
        DatasetSplits? splits = null;
        if (meta?.DataConfig is { } json)
        {
            var key = json.GetRawText() + dataPath;
            if (!data.TryGetValue(key, out splits))
            {
                var config = CheckpointData.Of(folder.LastCheckpoint, meta);
                if (dataPath is not null) config = config with { DataPath = dataPath };
                data[key] = splits = DatasetCatalog.Load(config);
            }
            if (images is not null && images.Labels.Length != splits.Test.Count)
                throw new ConfigException(
                    $"{folder.TestPredictionsFile}: {images.Labels.Length} predictions, the test set has " +
                    $"{splits.Test.Count} images");
        }
        return new Run(System.IO.Path.GetFileName(System.IO.Path.GetFullPath(dir).TrimEnd('/')), dir, metrics, final,
            images, meta, splits);
    }

    static string Section(Run r)
    {
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture,
            $"<section class=\"run\" id=\"run-{E(r.Name)}\"><h2>{E(r.Name)}</h2><p " +
            $"class=\"path\">{E(System.IO.Path.GetFullPath(r.Path))}</p>");
        if (r.Final is not { } f || r.Splits is not { } s)
        {
            html.Append(
                "<p>No final evaluation yet (the run is still training, or was made before per-image predictions " +
                "were kept).</p></section>");
            return html.ToString();
        }
        var names = s.ClassNames;
        html.Append("<h3>Per-class accuracy against training images</h3>").Append(PerClassSvg(f.PerClassAccuracy,
            s.TrainClassCounts, names, s.Groups));
        html.Append("<h3>Confusion matrix (rows: true class, share of the row)</h3>").Append(HeatMap(f.Confusion,
            names));
        if (r.Images is { } im)
        {
            var tail = s.Groups.Tail.ToHashSet();
            var missed = Enumerable.Range(0,
                im.Labels.Length).Where(i => tail.Contains(im.Labels[i]) && im.Predicted[i] != im.Labels[i]).ToList();
            html.Append(CultureInfo.InvariantCulture,
                $"<h3>Tail classes: {missed.Count} misclassified test images</h3>");
            html.Append(Gallery("gallery tail-misses", missed, im, s,
                i => $"{names[im.Labels[i]]} taken for {names[im.Predicted[i]]} ({100 * im.Confidence[i]:F0}%)"));
            // What the tail classes are taken for, most often first: where a head class swallows a tail class.
            var takenFor = missed.GroupBy(i => (im.Labels[i],
                im.Predicted[i])).OrderByDescending(g => g.Count()).Take(10);
            html.Append("<table class=\"taken-for\"><tr><th>tail class</th><th>taken for</th><th>images</th></tr>");
            foreach (var g in takenFor) html.Append(CultureInfo.InvariantCulture,
                $"<tr><td>{E(names[g.Key.Item1])}</td><td>{E(names[g.Key.Item2])} " +
                $"({s.Groups.GroupOf(g.Key.Item2)})</td><td>{g.Count()}</td></tr>");
            html.Append("</table>");
        }
        return html.Append("</section>").ToString();
    }

    static string Comparisons(List<Run> runs)
    {
        var html = new StringBuilder();
        var b = runs[0];
        foreach (var r in runs.Skip(1))
        {
            if (b.Images is not { } x || r.Images is not { } y || x.Labels.Length != y.Labels.Length ||
                !x.Labels.SequenceEqual(y.Labels) || r.Splits is not { } s) continue;
            var fixedIdx = Enumerable.Range(0,
                x.Labels.Length).Where(i => x.Predicted[i] != x.Labels[i] && y.Predicted[i] == y.Labels[i]).ToList();
            var broke = Enumerable.Range(0,
                x.Labels.Length).Where(i => x.Predicted[i] == x.Labels[i] && y.Predicted[i] != y.Labels[i]).ToList();
            string ByGroup(List<int> idx) => string.Join(", ", new[] { ("head", s.Groups.Head), ("medium",
                s.Groups.Medium), ("tail", s.Groups.Tail) }
                .Select(g => $"{g.Item1} {idx.Count(i => g.Item2.Contains(x.Labels[i]))}"));
            html.Append(CultureInfo.InvariantCulture,
                $"<section class=\"compare\"><h2>{E(r.Name)} against {E(b.Name)}</h2>");
            html.Append(CultureInfo.InvariantCulture,
                $"<p id=\"fixed-count\">fixed: {fixedIdx.Count} images ({ByGroup(fixedIdx)})</p>");
            html.Append(Gallery("gallery fixed", fixedIdx, y, s,
                i => $"{s.ClassNames[x.Labels[i]]}: was {s.ClassNames[x.Predicted[i]]}"));
            html.Append(CultureInfo.InvariantCulture,
                $"<p id=\"broke-count\">broke: {broke.Count} images ({ByGroup(broke)})</p>");
            html.Append(Gallery("gallery broke", broke, y, s,
                i => $"{s.ClassNames[x.Labels[i]]}: now {s.ClassNames[y.Predicted[i]]}"));
            html.Append("</section>");
        }
        return html.ToString();
    }

    static string Gallery(string cls, List<int> indices, ImagePredictions im, DatasetSplits s, Func<int,
        string> caption)
    {
        var html = new StringBuilder().Append(CultureInfo.InvariantCulture, $"<div class=\"{cls}\">");
        var pixels = new byte[s.Test.Shape.Size];
        // Class by class in turn, so every class shows within the limit, not only the first class's images.
        var shown = indices.GroupBy(i => im.Labels[i]).OrderBy(g => g.Key)
            .SelectMany(g => g.Select((i, rank) => (i,
                rank))).OrderBy(x => x.rank).ThenBy(x => im.Labels[x.i]).Select(x => x.i);
        foreach (var i in shown.Take(GalleryLimit))
        {
            s.Test.ReadInto(i, pixels);
            html.Append(CultureInfo.InvariantCulture,
                $"<figure><img src=\"data:image/png;base64,{Png(pixels, s.Test.Shape)}\" alt=\"test image " +
                $"{i}\"><figcaption>{E(caption(i))}</figcaption></figure>");
        }
        if (indices.Count > GalleryLimit) html.Append(CultureInfo.InvariantCulture,
            $"<p>and {indices.Count - GalleryLimit} more</p>");
        return html.Append("</div>").ToString();
    }

    /// <summary>A CHW uint8 image as a base64 PNG, scaled up to at least 64 pixels so small images can be
    /// seen.</summary>
    static string Png(byte[] chw, ImageShape shape)
    {
        var (c, h, w) = shape;
        using var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var rgba = new byte[w * h * 4];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int p = y * w + x;
                byte r = chw[p], g = c == 3 ? chw[h * w + p] : r, b = c == 3 ? chw[2 * h * w + p] : r;
                rgba[4 * p] = r; rgba[4 * p + 1] = g; rgba[4 * p + 2] = b; rgba[4 * p + 3] = 255;
            }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        int scale = Math.Max(1, 64 / Math.Max(1, Math.Min(w, h)));
        using var big = bitmap.Resize(new SKImageInfo(w * scale, h * scale), SKSamplingOptions.Default);
        using var image = SKImage.FromBitmap(big ?? bitmap);
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return Convert.ToBase64String(png.ToArray());
    }

    static string HeatMap(long[][] confusion, IReadOnlyList<string> names)
    {
        var html = new StringBuilder("<table class=\"heatmap\" id=\"confusion\"><tr><th></th>");
        foreach (var n in names) html.Append(CultureInfo.InvariantCulture, $"<th class=\"col\">{E(n)}</th>");
        html.Append("</tr>");
        for (int i = 0; i < confusion.Length; i++)
        {
            double row = Math.Max(1, confusion[i].Sum());
            html.Append(CultureInfo.InvariantCulture, $"<tr><th>{E(names[i])}</th>");
            for (int j = 0; j < confusion[i].Length; j++)
            {
                double share = confusion[i][j] / row;
                // Diagonal in green, errors in red; the shade is the share of the row.
                string color = i == j ? $"rgba(40,150,60,{share:F3})" : $"rgba(200,40,40,{Math.Min(1, share * 2):F3})";
                html.Append(CultureInfo.InvariantCulture,
                    $"<td style=\"background:{color}\" title=\"{E(names[i])} as {E(names[j])}: " +
                    $"{confusion[i][j]}\">{confusion[i][j]}</td>");
            }
            html.Append("</tr>");
        }
        return html.Append("</table>").ToString();
    }

    static string PerClassSvg(double[] accuracy, int[] counts, IReadOnlyList<string> names, ClassGroups groups)
    {
        int k = accuracy.Length, barW = Math.Max(6, Math.Min(40, 800 / Math.Max(1, k))), width = Math.Max(k * barW + 60,
            760), height = 220;
        var svg = new StringBuilder().Append(CultureInfo.InvariantCulture,
            $"<svg class=\"per-class\" width=\"{width}\" height=\"{height + 40}\" " +
                $"xmlns=\"http://www.w3.org/2000/svg\">");
        var order = Enumerable.Range(0, k).OrderByDescending(c => counts[c]).ToArray();
        int maxCount = Math.Max(1, counts.Max());
        for (int x = 0; x < k; x++)
        {
            int c = order[x];
            double acc = double.IsNaN(accuracy[c]) ? 0 : accuracy[c];
            double bh = acc / 100 * height, ch = (double)counts[c] / maxCount * height;
            string fill = groups.GroupOf(c) switch { "head" => "#4a7fb5", "medium" => "#e0a030", _ => "#c0392b" };
            // The bar (accuracy) and the dot (training count) of one class.
            svg.Append(CultureInfo.InvariantCulture,
                $"<rect x=\"{40 + x * barW}\" y=\"{height - bh:F1}\" width=\"{barW - 2}\" height=\"{bh:F1}\" " +
                $"fill=\"{fill}\"><title>{E(names[c])}: {acc:F1}% with {counts[c]} training images</title></rect>" +
                $"<circle cx=\"{40 + x * barW + barW / 2.0 - 1:F1}\" cy=\"{height - ch:F1}\" r=\"2.5\" " +
                $"fill=\"#222\"/>");
        }
        svg.Append(CultureInfo.InvariantCulture,
            $"<text x=\"0\" y=\"12\" font-size=\"11\">100%</text><text x=\"0\" y=\"{height}\" " +
                $"font-size=\"11\">0</text>");
        svg.Append(CultureInfo.InvariantCulture,
            $"<text x=\"40\" y=\"{height + 25}\" font-size=\"11\">bars: test accuracy (head blue, medium orange, " +
            $"tail red); dots: training images (max {maxCount}); classes by training count</text>");
        return svg.Append("</svg>").ToString();
    }

    static string Cell(double? v) => v is { } x && !double.IsNaN(x) ? string.Create(CultureInfo.InvariantCulture,
        $"<td>{x:F2}</td>") : "<td>-</td>";

    static string E(string s) => WebUtility.HtmlEncode(s);

    const string Style =
        "body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;margin:.5em " +
        "0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}" +
        ".heatmap td{min-width:28px}.heatmap " +
            "th.col{writing-mode:vertical-rl}.gallery{display:flex;flex-wrap:wrap;gap:6px}" +
            "figure{margin:0;width:110px;font-size:11px}" +
        "figure img{width:96px;height:96px;image-rendering:pixelated;border:1px solid " +
            "#999}.path{color:#777;font-size:12px}#result{font-weight:bold;margin:.5em 0}";

    const string UploadForm =
        "<section id=\"upload\"><h2>Try the model</h2><form id=\"upload-form\"><input type=\"file\" id=\"file\" " +
        "accept=\"image/*\"> " +
        "<button type=\"submit\" id=\"predict\">Predict</button></form><div id=\"result\"></div><script>" +
        "document.getElementById('upload-form').addEventListener('submit',async e=>{e.preventDefault();const " +
            "f=document.getElementById('file').files[0];" +
        "const out=document.getElementById('result');if(!f){out.textContent='choose an image first';return;}" +
        "const r=await " +
            "fetch('/v1/predict?top_k=3',{method:'POST',headers:{'Content-Type':f.type||'application/octet-stream'}," +
            "body:f});const j=await r.json();" +
        "out.textContent=r.ok?j.predictions[0].top.map(t=>t.name+' '+(100*t.probability).toFixed(1)+'%').join(', " +
            "'):('error '+j.status+': '+j.error);});</script></section>";
}
