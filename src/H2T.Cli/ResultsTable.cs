using H2T.Runs;
using H2T.Training;
using Spectre.Console;

namespace H2T.Cli;

/// <summary>The table this field reads: Head / Medium / Tail / All at the final epoch, best-on-test beside
/// it.</summary>
public static class ResultsTable
{
    public static void Write(IAnsiConsole console, IEnumerable<(string Name, RunMetrics Metrics)> runs)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("run").AddColumn(new TableColumn("Head").RightAligned()).AddColumn(new TableColumn(
                "Medium").RightAligned())
            .AddColumn(new TableColumn("Tail").RightAligned()).AddColumn(new TableColumn("All").RightAligned())
            .AddColumn(new TableColumn("ECE").RightAligned()).AddColumn(new TableColumn(
                "All at best-validation epoch").RightAligned())
            .AddColumn(new TableColumn("All, best on test (epoch)").RightAligned());
        foreach (var (name, m) in runs)
        {
            var f = m.Final ?? m.Epochs.LastOrDefault()?.Test;
            if (f is null) { table.AddRow(Markup.Escape(name), "-", "-", "-", "-", "-", "-", "-"); continue; }
            table.AddRow(Markup.Escape(name), F(f.Head), F(f.Medium), F(f.Tail), $"[bold]{F(f.Top1)}[/]", F(f.Ece),
                m.SelectedTest is { } sel ? $"{F(sel.Top1)} ({m.SelectedEpoch + 1})" : "-",
                m.BestOnTest is { } b ? $"{F(b.Top1)} ({m.BestOnTestEpoch + 1})" : "-");
        }
        table.Caption(
            "test accuracy (%) at the final epoch; groups: mean per-class accuracy; best on test is optimistic, " +
            "shown only beside");
        console.Write(table);
    }

    /// <summary>Sweep: one row per rho, validation then test, the selected rho marked.</summary>
    public static void WriteSweep(IAnsiConsole console, SweepResult sweep)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumn(sweep.IsRhoSweep ? "rho" : "member");
        foreach (var c in new[] { "val Head", "val Med", "val Tail", "val All", "Head", "Medium", "Tail", "All",
            "ECE" })
            table.AddColumn(new TableColumn(c).RightAligned());
        static string O(double? v) => v is { } x ? F(x) : "-";
        foreach (var r in sweep.Rows)
        {
            var v = r.FinalValidation;
            var t = r.FinalTest;
            var name = Markup.Escape(r.Shown(sweep)) + (r.IsSelected(sweep) ? " [green](selected)[/]" : "");
            table.AddRow(name, O(v?.Head), O(v?.Medium), O(v?.Tail), O(v?.Top1), O(t?.Head), O(t?.Medium), O(t?.Tail),
                t is null ? "-" : $"[bold]{F(t.Top1)}[/]", O(t?.Ece));
        }
        table.Caption(
            $"accuracy (%) at the final epoch: validation (val) and test; {(sweep.IsRhoSweep ? "rho" : "member")} " +
            $"selected by {Markup.Escape(sweep.SelectedBy)}");
        console.Write(table);
    }

    static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2",
        System.Globalization.CultureInfo.InvariantCulture);
}
