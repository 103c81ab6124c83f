using System.Globalization;
using System.Text;
using H2T.Runs;
using ScottPlot;

namespace H2T.Reporting;

/// <summary>A sweep's table (rho x Head / Medium / Tail / All, validation and test) and its plot against rho (the
/// paper's ablation figure): test as solid lines, validation dashed, the selected rho marked.</summary>
public static class SweepReport
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>sweep.png and sweep.md (which shows it) in <paramref name="outDir"/>; returns both paths.</summary>
    public static (string Markdown, string Plot) Write(SweepResult sweep, string outDir)
    {
        var png = Path.Combine(outDir, "sweep.png");
        Plot(sweep, png);
        var md = Path.Combine(outDir, "sweep.md");
        AtomicFile.WriteText(md, Markdown(sweep, "sweep.png"));
        return (md, png);
    }

    public static string Markdown(SweepResult sweep, string? plotFile = null)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        string F(double? v) => v is { } x && !double.IsNaN(x) ? x.ToString("F2", Ci) : "-";
        var sb = new StringBuilder();
        string over = sweep.IsRhoSweep ? "rho" : string.Join(" x ", sweep.SweptKeys);
        sb.AppendLine(Ci, $"# Stage-II sweep over {over} ({sweep.Dataset}, {sweep.Epochs} epochs)").AppendLine();
        sb.AppendLine(Ci,
            $"From `{sweep.From}`. {sweep.Rows.Count} values trained in one pass: " +
            $"{sweep.WallSeconds.ToString("F0", Ci)} s wall " +
                      $"({sweep.TrainSeconds.ToString("F0", Ci)} s training, {sweep.EvalSeconds.ToString("F0", Ci)} " +
                          $"s evaluation).").AppendLine();
        if (sweep.ValidationNote is not null) sb.AppendLine(Ci,
            $"Validation split: {sweep.ValidationNote}.").AppendLine();
        var chosen = sweep.Rows.Find(r => r.IsSelected(sweep));
        sb.AppendLine(chosen is not null
            ? $"**Selected {(sweep.IsRhoSweep ? "rho = " : "")}{chosen.Shown(sweep)}** ({sweep.SelectedBy}); " +
                $"checkpoint `{sweep.SelectedCheckpoint}`. Its test row is the honest figure; the other test rows " +
                $"are for reading the trend, not for choosing."
            : $"No member selected: {sweep.SelectedBy}.").AppendLine();
        sb.AppendLine(Ci,
            $"| {(sweep.IsRhoSweep ? "rho" : "member")} | val Head | val Medium | val Tail | val All | test Head | " +
            $"test Medium | test Tail | test All | test ECE |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in sweep.Rows)
        {
            var v = r.FinalValidation;
            var t = r.FinalTest;
            var mark = r.IsSelected(sweep) ? " (selected)" : "";
            sb.AppendLine(Ci,
                $"| {r.Shown(sweep)}{mark} | {F(v?.Head)} | {F(v?.Medium)} | {F(v?.Tail)} | {F(v?.Top1)} | " +
                          $"{F(t?.Head)} | {F(t?.Medium)} | {F(t?.Tail)} | {F(t?.Top1)} | {F(t?.Ece)} |");
        }
        sb.AppendLine().AppendLine(
            "Accuracy in % at the final epoch; groups are mean per-class accuracy; validation is class-balanced and " +
            "disjoint from training and test.");
        if (plotFile is not null) sb.AppendLine().AppendLine(Ci, $"![accuracy against {over}]({plotFile})");
        return sb.ToString();
    }

    /// <summary>Writes the PNG plot of Head / Medium / Tail / All against rho.</summary>
    public static void Plot(SweepResult sweep, string pngPath, int width = 1100, int height = 560)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        var plot = new Plot();
        // A rho sweep plots against rho; any other against the member's place in the table, ticks named by it.
        bool byRho = sweep.IsRhoSweep;
        var rhos = byRho ? sweep.Rows.Select(r => r.Rho).ToArray() : [.. Enumerable.Range(0,
            sweep.Rows.Count).Select(i => (double)i)];
        (string Name, Func<EvaluationSummary, double> Get, Color Color)[] series =
        [
            ("Head", s => s.Head, Colors.SteelBlue), ("Medium", s => s.Medium, Colors.DarkOrange),
            ("Tail", s => s.Tail, Colors.ForestGreen), ("All", s => s.Top1, Colors.Black),
        ];
        foreach (var (name, get, color) in series)
        {
            if (sweep.Rows.All(r => r.FinalTest is not null))
            {
                var test = plot.Add.Scatter(rhos, sweep.Rows.Select(r => get(r.FinalTest!)).ToArray());
                test.LegendText = $"{name} (test)";
                test.Color = color;
                test.LineWidth = name == "All" ? 3 : 2;
                test.MarkerSize = 7;
            }
            if (sweep.Rows.All(r => r.FinalValidation is not null))
            {
                var val = plot.Add.Scatter(rhos, sweep.Rows.Select(r => get(r.FinalValidation!)).ToArray());
                val.LegendText = $"{name} (validation)";
                val.Color = color.WithAlpha(0.6);
                val.LinePattern = LinePattern.Dashed;
                val.MarkerSize = 4;
            }
        }
        int selected = sweep.Rows.FindIndex(r => r.IsSelected(sweep));
        if (selected >= 0)
        {
            var line = plot.Add.VerticalLine(rhos[selected]);
            line.Color = Colors.Gray;
            line.LinePattern = LinePattern.Dotted;
            line.LegendText = $"selected {(byRho ? "rho = " : "")}{sweep.Rows[selected].Shown(sweep)}";
        }
        string over = byRho ? "rho" : string.Join(" x ", sweep.SweptKeys);
        plot.Title(
            $"Stage II: accuracy against {over} ({sweep.Dataset}, {sweep.Epochs} " +
                $"epoch{(sweep.Epochs == 1 ? "" : "s")})");
        if (byRho) plot.XLabel("fusion ratio rho (fraction of channels from the head-side image)");
        else
        {
            plot.Axes.Bottom.SetTicks(rhos, [.. sweep.Rows.Select(r => r.Shown(sweep))]);
            plot.XLabel(over);
        }
        plot.YLabel("accuracy (%)");
        plot.ShowLegend(Edge.Right);
        PlotFile.SavePng(plot, pngPath, width, height);
    }
}
