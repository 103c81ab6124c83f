using H2T.Training;
using Spectre.Console;

namespace H2T.Cli;

/// <summary>The table this field reads: Head / Medium / Tail / All at the final epoch, best-on-test beside it.</summary>
public static class ResultsTable
{
    public static void Write(IAnsiConsole console, IEnumerable<(string Name, RunMetrics Metrics)> runs)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("run").AddColumn(new TableColumn("Head").RightAligned()).AddColumn(new TableColumn("Medium").RightAligned())
            .AddColumn(new TableColumn("Tail").RightAligned()).AddColumn(new TableColumn("All").RightAligned())
            .AddColumn(new TableColumn("ECE").RightAligned()).AddColumn(new TableColumn("All, best on test (epoch)").RightAligned());
        foreach (var (name, m) in runs)
        {
            var f = m.Final ?? m.Epochs.LastOrDefault()?.Test;
            if (f is null) { table.AddRow(Markup.Escape(name), "-", "-", "-", "-", "-", "-"); continue; }
            table.AddRow(Markup.Escape(name), F(f.Head), F(f.Medium), F(f.Tail), $"[bold]{F(f.Top1)}[/]", F(f.Ece),
                m.BestOnTest is { } b ? $"{F(b.Top1)} ({m.BestOnTestEpoch + 1})" : "-");
        }
        table.Caption("test accuracy (%) at the final epoch; groups: mean per-class accuracy");
        console.Write(table);
    }

    static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
}
