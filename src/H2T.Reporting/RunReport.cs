using System.Globalization;
using System.Text;
using System.Text.Json;
using H2T.Runs;
using H2T.Evaluation;
using H2T.Settings;
using ScottPlot;

namespace H2T.Reporting;

/// <summary>
/// A run folder's own report: report.md (config summary, final table, per-group and per-class accuracy, calibration)
/// and three PNG plots beside it: curves.png (loss, lr and accuracy by epoch), per-class.png (accuracy against
/// training count, the classic long-tail plot) and reliability.png (accuracy against confidence per bin).
/// </summary>
public static class RunReport
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;
    public const string File = "report.md";

    /// <summary>Writes the report of a finished (or interrupted) run; returns the report's path.</summary>
    public static string Write(string folder, string? title = null)
    {
        var run = new RunFolder(folder);
        var metrics = run.ReadMetrics();
        if (metrics.Epochs.Count == 0) throw new ConfigException(
            $"{run.MetricsFile}: no epochs yet, nothing to report");
        var meta = System.IO.File.Exists(run.LastCheckpoint) ? Checkpoint.ReadMeta(run.LastCheckpoint) : null;
        var eval = run.ReadFinalEval();
        var name = title ?? Path.GetFileName(run.Path);

        Curves(metrics, Path.Combine(run.Path, "curves.png"), name);
        if (eval is not null && meta is { ClassCounts.Length: > 0 })
            PerClass([(name, eval.PerClassAccuracy)], meta.ClassCounts, Path.Combine(run.Path, "per-class.png"),
                $"{name}: per-class accuracy against training count");
        if (eval?.Reliability is { } bins) Reliability(bins, eval.Ece, Path.Combine(run.Path, "reliability.png"), name);

        var sb = new StringBuilder();
        sb.AppendLine(Ci, $"# {name}").AppendLine();
        if (meta is not null)
        {
            sb.AppendLine(Ci,
                $"- stage: {meta.Stage}; {meta.Architecture} ({meta.InChannels} input channel(s)), {meta.Classifier} " +
                $"classifier, {meta.NumClasses} classes; dataset {meta.Dataset}; seed {meta.Seed}");
            if (meta.From is { } from) sb.AppendLine(Ci, $"- from: {from}");
            if (meta.ImportedFrom is { } imp) sb.AppendLine(Ci, $"- imported from PyTorch: {imp}");
            sb.AppendLine(Ci, $"- training images per class: {string.Join(" ", meta.ClassCounts)}");
            if (meta.Config is { } cfg) sb.AppendLine(Ci, $"- config: `{Compact(cfg)}`");
        }
        sb.AppendLine(Ci,
            $"- epochs: {metrics.Epochs.Count}{(metrics.Completed ? "" : " (unfinished)")}; mean train time " +
            $"{metrics.Epochs.Average(e => e.TrainSeconds).ToString("F1", Ci)} s/epoch, " +
            $"{metrics.Epochs.Average(e => e.ImagesPerSecond).ToString("F0", Ci)} img/s; peak resident memory " +
            $"{metrics.Epochs.Max(e => e.PeakResidentMb).ToString("F0", Ci)} MB");
        if (MemoryDrift(metrics) is { } drift)
            sb.AppendLine(Ci,
                $"- resident memory: {drift.First.ToString("F0", Ci)} MB after epoch 2, " +
                $"{drift.Last.ToString("F0", Ci)} MB at the end; drift " +
                $"{drift.SlopeMbPerEpoch.ToString("+0.00;-0.00", Ci)} MB per epoch (least-squares slope from epoch 2 " +
                $"on)");
        sb.AppendLine();
        sb.AppendLine("| figure | Head | Medium | Tail | All | ECE | NLL |").AppendLine(
            "| --- | --- | --- | --- | --- | --- | --- |");
        void Row(string label, EvaluationSummary? s)
        {
            if (s is not null) sb.AppendLine(Ci,
                $"| {label} | {F(s.Head)} | {F(s.Medium)} | {F(s.Tail)} | {F(s.Top1)} | {F(s.Ece)} | " +
                $"{s.Nll.ToString("F3", Ci)} |");
        }
        Row($"test, final epoch ({metrics.FinalEpoch + 1})", metrics.Final);
        if (metrics.SelectedTest is not null) Row($"test at the best-validation epoch ({metrics.SelectedEpoch + 1})",
            metrics.SelectedTest);
        if (metrics.FinalValidation is not null) Row("validation, final epoch", metrics.FinalValidation);
        Row($"test, best on test ({metrics.BestOnTestEpoch + 1}; optimistic)", metrics.BestOnTest);
        sb.AppendLine().AppendLine(
            "Accuracy in %, groups as mean per-class accuracy; ECE over 15 confidence bins.").AppendLine();
        if (eval is not null)
        {
            sb.AppendLine("| class | training images | test accuracy |").AppendLine("| --- | --- | --- |");
            for (int c = 0; c < eval.PerClassAccuracy.Length; c++)
                sb.AppendLine(Ci,
                    $"| {c} | {(meta is { } m && c < m.ClassCounts.Length ? m.ClassCounts[c].ToString(Ci) : "-")} | " +
                    $"{F(eval.PerClassAccuracy[c])} |");
            sb.AppendLine();
        }
        sb.AppendLine("![training curves](curves.png)");
        if (System.IO.File.Exists(Path.Combine(run.Path,
            "per-class.png"))) sb.AppendLine().AppendLine(
            "![per-class accuracy against training count](per-class.png)");
        if (System.IO.File.Exists(Path.Combine(run.Path,
            "reliability.png"))) sb.AppendLine().AppendLine("![reliability diagram](reliability.png)");
        var path = Path.Combine(run.Path, File);
        AtomicFile.WriteText(path, sb.ToString());
        return path;
    }

    /// <summary>Resident memory drift: the least-squares slope of end-of-epoch resident memory over epochs 2.. (epoch 1
    /// warms up).</summary>
    public static (double First, double Last, double SlopeMbPerEpoch)? MemoryDrift(RunMetrics metrics)
    {
        var pts = metrics.Epochs.OrderBy(e => e.Epoch).Where(e => e.Epoch >= 1 && e.ResidentMb > 0).Select(e =>
            (X: (double)e.Epoch, Y: e.ResidentMb)).ToList();
        if (pts.Count < 3) return null;
        double mx = pts.Average(p => p.X), my = pts.Average(p => p.Y);
        var slope = pts.Sum(p => (p.X - mx) * (p.Y - my)) / pts.Sum(p => (p.X - mx) * (p.X - mx));
        return (pts[0].Y, pts[^1].Y, slope);
    }

    static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2", Ci);

    static string Compact(JsonElement e) => JsonSerializer.Serialize(e).Replace("`", "'", StringComparison.Ordinal);

    /// <summary>Train loss (left axis) and test/validation accuracy (right axis) by epoch.</summary>
    public static void Curves(RunMetrics metrics, string png, string title)
    {
        var plot = new Plot();
        var epochs = metrics.Epochs.OrderBy(e => e.Epoch).ToList();
        var loss = plot.Add.Scatter(epochs.Select(e => e.Epoch + 1.0).ToArray(),
            epochs.Select(e => e.TrainLoss).ToArray());
        loss.LegendText = "train loss";
        loss.Color = Colors.Gray;
        loss.LineWidth = 2;
        var right = plot.Axes.Right;
        var evaluated = epochs.Where(e => e.Test is not null).ToList();
        (string Name, Func<EvaluationSummary, double> Get, Color Color)[] series =
        [
            ("test All", s => s.Top1, Colors.Black), ("test Head", s => s.Head, Colors.SteelBlue),
            ("test Medium", s => s.Medium, Colors.DarkOrange), ("test Tail", s => s.Tail, Colors.ForestGreen),
        ];
        foreach (var (name, get, color) in series)
        {
            if (evaluated.Count == 0) break;
            var s = plot.Add.Scatter(evaluated.Select(e => e.Epoch + 1.0).ToArray(),
                evaluated.Select(e => get(e.Test!)).ToArray());
            s.Axes.YAxis = right;
            s.LegendText = name;
            s.Color = color;
            s.MarkerSize = evaluated.Count < 15 ? 6 : 3;
        }
        var validated = epochs.Where(e => e.Validation is not null).ToList();
        if (validated.Count > 0)
        {
            var v = plot.Add.Scatter(validated.Select(e => e.Epoch + 1.0).ToArray(),
                validated.Select(e => e.Validation!.Top1).ToArray());
            v.Axes.YAxis = right;
            v.LegendText = "validation All";
            v.Color = Colors.Black.WithAlpha(0.5);
            v.LinePattern = LinePattern.Dashed;
        }
        plot.Title($"{title}: training curves");
        plot.XLabel("epoch");
        plot.YLabel("train loss");
        right.Label.Text = "accuracy (%)";
        plot.ShowLegend(Edge.Right);
        PlotFile.SavePng(plot, png, 1100, 520);
    }

    /// <summary>The classic long-tail plot: per-class accuracy against training count (log scale), one series per
    /// run.</summary>
    public static void PerClass(IReadOnlyList<(string Name, double[] Accuracy)> runs, IReadOnlyList<int> counts,
        string png, string title)
    {
        var plot = new Plot();
        var order = Enumerable.Range(0, counts.Count).OrderByDescending(c => counts[c]).ThenBy(c => c).ToArray();
        var xs = order.Select(c => Math.Log10(Math.Max(1, counts[c]))).ToArray();
        var palette = new ScottPlot.Palettes.Category10();
        for (int r = 0; r < runs.Count; r++)
        {
            var s = plot.Add.Scatter(xs, order.Select(c => runs[r].Accuracy[c]).ToArray());
            s.LegendText = runs[r].Name;
            s.Color = palette.GetColor(r);
            s.MarkerSize = counts.Count <= 20 ? 7 : 3;
            s.LineWidth = counts.Count <= 20 ? 1.5f : 0;
        }
        // Log-scale tick labels in image counts.
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var v in new[] { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000 })
            if (v >= counts.Min() / 2.0 && v <= counts.Max() * 2.0) ticks.AddMajor(Math.Log10(v), v.ToString(Ci));
        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Axes.SetLimitsX(xs.Max() + 0.1, xs.Min() - 0.1); // reversed: head on the left
        plot.Title(title);
        plot.XLabel("training images in the class (log scale; head on the left, tail on the right)");
        plot.YLabel("test accuracy (%)");
        plot.ShowLegend(Edge.Right);
        PlotFile.SavePng(plot, png, 1100, 520);
    }

    /// <summary>Accuracy against mean confidence per bin, with the diagonal of perfect calibration.</summary>
    public static void Reliability(IReadOnlyList<CalibrationBin> bins, double ece, string png, string title)
    {
        var plot = new Plot();
        var bars = bins.Where(b => b.Count > 0).Select(b => new Bar
        {
            Position = (b.Lower + b.Upper) / 2 * 100, Value = b.Accuracy, Size = (b.Upper - b.Lower) * 100 * 0.9,
            FillColor = Colors.SteelBlue.WithAlpha(0.8),
        }).ToList();
        var barPlot = plot.Add.Bars(bars);
        barPlot.LegendText = "accuracy in the bin";
        var gap = plot.Add.Scatter(bins.Where(b => b.Count > 0).Select(b => (b.Lower + b.Upper) / 2 * 100).ToArray(),
            bins.Where(b => b.Count > 0).Select(b => b.Confidence).ToArray());
        gap.LegendText = "mean confidence in the bin";
        gap.Color = Colors.Red;
        gap.LineWidth = 0;
        gap.MarkerSize = 7;
        var diag = plot.Add.Line(0, 0, 100, 100);
        diag.Color = Colors.Gray;
        diag.LinePattern = LinePattern.Dashed;
        diag.LegendText = "perfect calibration";
        plot.Axes.SetLimits(0, 100, 0, 100);
        plot.Title($"{title}: reliability (ECE {ece.ToString("F2", Ci)}%)");
        plot.XLabel("confidence (%)");
        plot.YLabel("accuracy (%)");
        plot.ShowLegend(Alignment.UpperLeft);
        PlotFile.SavePng(plot, png, 640, 600);
    }
}
