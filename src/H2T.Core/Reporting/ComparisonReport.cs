using System.Globalization;
using System.Text;
using H2T.Training;

namespace H2T.Reporting;

/// <summary>One run's row: its name, folder and metrics.</summary>
public sealed record RunRow(string Name, string Folder, RunMetrics Metrics);

/// <summary>Side-by-side Markdown table of runs: Head / Medium / Tail / All / ECE at the final epoch, best-on-test beside.</summary>
public static class ComparisonReport
{
    public static RunRow Load(string folder)
    {
        if (!Directory.Exists(folder)) throw new ConfigException($"{folder}: no such run folder");
        var run = new RunFolder(folder);
        if (!File.Exists(run.MetricsFile)) throw new ConfigException($"{run.MetricsFile}: not found (is {folder} a run folder?)");
        return new RunRow(Path.GetFileName(run.Path.TrimEnd('/')), run.Path, run.ReadMetrics());
    }

    public static string Markdown(IReadOnlyList<RunRow> rows, string? title = null)
    {
        var ci = CultureInfo.InvariantCulture;
        string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2", ci);
        var sb = new StringBuilder();
        if (title is not null) sb.AppendLine($"# {title}").AppendLine();
        sb.AppendLine("| run | stage | epochs | Head | Medium | Tail | All | ECE | All at best-validation epoch | All, best on test (epoch) | s/epoch (train) | img/s |");
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
                : $"| {r.Name} | {m.Stage} | {done} | {F(f.Head)} | {F(f.Medium)} | {F(f.Tail)} | {F(f.Top1)} | {F(f.Ece)} | " +
                  $"{(m.SelectedTest is { } sel ? $"{F(sel.Top1)} ({m.SelectedEpoch + 1})" : "-")} | " +
                  $"{(m.BestOnTest is { } b ? $"{F(b.Top1)} ({m.BestOnTestEpoch + 1})" : "-")} | {secs.ToString("F1", ci)} | {ips.ToString("F0", ci)} |");
        }
        sb.AppendLine().AppendLine("Test accuracy in % at the final epoch (groups: mean per-class accuracy). \"Best on test\" picks the epoch on the test set: optimistic, shown only beside.");
        return sb.ToString();
    }
}
