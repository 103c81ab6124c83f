using System.Globalization;
using System.Text;
using H2T.Runs;
using H2T.Settings;
using ScottPlot;

namespace H2T.Reporting;

/// <summary>One run's row: its name, folder and metrics.</summary>
public sealed record RunRow(string Name, string Folder, RunMetrics Metrics);

/// <summary>Side-by-side Markdown table of runs: Head / Medium / Tail / All / ECE at the final epoch, best-on-test
/// beside.</summary>
public static class ComparisonReport
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public static RunRow Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new ConfigException($"{folder}: no such run folder");
        var run = new RunFolder(folder);
        if (!File.Exists(run.MetricsFile)) throw new ConfigException(
            $"{run.MetricsFile}: not found (is {folder} a run folder?)");
        return new RunRow(Path.GetFileName(run.Path.TrimEnd('/')), run.Path, run.ReadMetrics());
    }

    public static string Markdown(IReadOnlyList<RunRow> rows, string? title = null)
    {
        var ci = CultureInfo.InvariantCulture;
        string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2", ci);
        var sb = new StringBuilder();
        if (title is not null) sb.AppendLine(Ci, $"# {title}").AppendLine();
        sb.AppendLine(
            "| run | stage | epochs | Head | Medium | Tail | All | ECE | All at best-validation epoch | All, best on " +
            "test (epoch) | s/epoch (train) | img/s |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in rows)
        {
            var m = r.Metrics;
            var f = m.Final ?? m.Epochs.LastOrDefault()?.Test;
            var secs = m.Epochs.Count == 0 ? double.NaN : m.Epochs.Average(e => e.TrainSeconds);
            var ips = m.Epochs.Count == 0 ? double.NaN : m.Epochs.Average(e => e.ImagesPerSecond);
            var done = m.Completed ? m.Epochs.Count.ToString(ci) : $"{m.Epochs.Count} (unfinished)";
            sb.AppendLine(f is null
                ? $"| {r.Name} | {m.Stage} | {done} | - | - | - | - | - | - | - | - | - |"
                : $"| {r.Name} | {m.Stage} | {done} | {F(f.Head)} | {F(f.Medium)} | {F(f.Tail)} | {F(f.Top1)} | " +
                    $"{F(f.Ece)} | " +
                  $"{(m.SelectedTest is { } sel ? $"{F(sel.Top1)} ({m.SelectedEpoch + 1})" : "-")} | " +
                  $"{(m.BestOnTest is { } b ? $"{F(b.Top1)} ({m.BestOnTestEpoch + 1})" : "-")} | " +
                      $"{secs.ToString("F1", ci)} | {ips.ToString("F0", ci)} |");
        }
        sb.AppendLine().AppendLine(
            "Test accuracy in % at the final epoch (groups: mean per-class accuracy). \"Best on test\" picks the " +
            "epoch on the test set: optimistic, shown only beside.");
        return sb.ToString();
    }

    /// <summary>The table, then an optional note, then the images as Markdown links relative to the report's
    /// folder.</summary>
    public static string Markdown(IReadOnlyList<RunRow> rows, string? title, IEnumerable<string> images,
        string reportDir, string? note = null)
    {
        var sb = new StringBuilder(Markdown(rows, title));
        if (note is not null) sb.AppendLine().AppendLine(note);
        foreach (var i in images) sb.AppendLine().AppendLine(Ci,
            $"![{Path.GetFileNameWithoutExtension(i)}]({Path.GetRelativePath(reportDir, i)})");
        return sb.ToString();
    }

    /// <summary>
    /// Two PNGs for the compared runs: <paramref name="png"/> (Head / Medium / Tail / All bars per run, final epoch)
    /// and
    /// <c>*-per-class.png</c> (per-class accuracy against training count, one series per run that has final-eval.json).
    /// Returns the paths written.
    /// </summary>
    public static IReadOnlyList<string> Plots(IReadOnlyList<RunRow> rows, string png, string? title = null)
    {
        var written = new List<string>();
        var finals = rows.Select(r => r.Metrics.Final ?? r.Metrics.Epochs.LastOrDefault(e =>
            e.Test is not null)?.Test).ToList();
        var series = rows.Zip(finals).Where(x => x.Second is not null)
            .Select(x => (x.First.Name, new[] { x.Second!.Head, x.Second.Medium, x.Second.Tail, x.Second.Top1 },
                (double[]?)null)).ToList();
        GroupBars(series, png, title ?? "test accuracy by group (final epoch)", "accuracy (%)", 1100, 520);
        written.Add(png);

        var perClass = new List<(string, double[])>();
        int[]? counts = null;
        foreach (var r in rows)
        {
            var run = new RunFolder(r.Folder);
            if (!File.Exists(run.LastCheckpoint) || run.ReadFinalEval() is not { } eval) continue;
            var meta = Checkpoint.ReadMeta(run.LastCheckpoint);
            if (meta.ClassCounts.Length != eval.PerClassAccuracy.Length) continue;
            counts ??= meta.ClassCounts;
            if (!counts.SequenceEqual(meta.ClassCounts)) continue; // another training set: not comparable on one axis
            perClass.Add((r.Name, eval.PerClassAccuracy));
        }
        if (counts is not null && perClass.Count > 0)
        {
            var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(png))!,
                Path.GetFileNameWithoutExtension(png) + "-per-class.png");
            RunReport.PerClass(perClass, counts, path, "per-class test accuracy against training count");
            written.Add(path);
        }
        return written;
    }

    /// <summary>Head / Medium / Tail / All bars with error bars: one series per row, its mean over seeds and the
    /// sample standard deviation (a grid's results; <c>h2t grid --collect</c>).</summary>
    public static void SpreadBars(IReadOnlyList<(string Name, double[] Mean, double[] Spread)> rows, string png,
        string title)
    {
        ArgumentNullException.ThrowIfNull(rows);
        GroupBars(rows.Select(r => (r.Name, r.Mean, (double[]?)r.Spread)).ToList(), png, title,
            "test accuracy (%), mean and std over seeds", 1200, 560);
    }

    /// <summary>Bars of Head / Medium / Tail / All, one colour per series, each bar with its error when
    /// given.</summary>
    static void GroupBars(IReadOnlyList<(string Name, double[] Values, double[]? Errors)> series, string png,
        string title, string yLabel, int width, int height)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        string[] groups = ["Head", "Medium", "Tail", "All"];
        double size = 0.8 / Math.Max(1, series.Count);
        for (int r = 0; r < series.Count; r++)
        {
            var (name, values, errors) = series[r];
            var bars = values.Select((v, g) => new Bar
            {
                Position = g + (r - (series.Count - 1) / 2.0) * size, Value = double.IsNaN(v) ? 0 : v,
                    Size = size * 0.95,
                Error = errors is null || double.IsNaN(errors[g]) ? 0 : errors[g], FillColor = palette.GetColor(r),
            }).ToList();
            plot.Add.Bars(bars).LegendText = name;
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (int g = 0; g < groups.Length; g++) ticks.AddMajor(g, groups[g]);
        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Axes.SetLimitsY(0, 100);
        plot.Title(title);
        plot.YLabel(yLabel);
        plot.ShowLegend(Edge.Right);
        PlotFile.SavePng(plot, png, width, height);
    }
}
