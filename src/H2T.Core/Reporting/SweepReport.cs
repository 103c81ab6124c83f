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
        sb.AppendLine(Ci, $"# Stage-II sweep over rho ({sweep.Dataset}, {sweep.Epochs} epochs)").AppendLine();
        sb.AppendLine(Ci, $"From `{sweep.From}`. {sweep.Rows.Count} values trained in one pass: {sweep.WallSeconds.ToString("F0", Ci)} s wall " +
                      $"({sweep.TrainSeconds.ToString("F0", Ci)} s training, {sweep.EvalSeconds.ToString("F0", Ci)} s evaluation).").AppendLine();
        if (sweep.ValidationNote is not null) sb.AppendLine(Ci, $"Validation split: {sweep.ValidationNote}.").AppendLine();
        sb.AppendLine(sweep.SelectedRho is { } s
            ? $"**Selected rho = {s.ToString("0.###", Ci)}** ({sweep.SelectedBy}); checkpoint `{sweep.SelectedCheckpoint}`. Its test row is the honest figure; the other test rows are for reading the trend, not for choosing."
            : $"No rho selected: {sweep.SelectedBy}.").AppendLine();
        sb.AppendLine("| rho | val Head | val Medium | val Tail | val All | test Head | test Medium | test Tail | test All | test ECE |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in sweep.Rows)
        {
            var v = r.FinalValidation;
            var t = r.FinalTest;
            var mark = sweep.SelectedRho == r.Rho ? " (selected)" : "";
            sb.AppendLine(Ci, $"| {r.Rho.ToString("0.###", Ci)}{mark} | {F(v?.Head)} | {F(v?.Medium)} | {F(v?.Tail)} | {F(v?.Top1)} | " +
                          $"{F(t?.Head)} | {F(t?.Medium)} | {F(t?.Tail)} | {F(t?.Top1)} | {F(t?.Ece)} |");
        }
        sb.AppendLine().AppendLine("Accuracy in % at the final epoch; groups are mean per-class accuracy; validation is class-balanced and disjoint from training and test.");
        if (plotFile is not null) sb.AppendLine().AppendLine(Ci, $"![accuracy against rho]({plotFile})");
        return sb.ToString();
    }

    /// <summary>Writes the PNG plot of Head / Medium / Tail / All against rho.</summary>
    public static void Plot(SweepResult sweep, string pngPath, int width = 1100, int height = 560)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        var plot = new Plot();
        var rhos = sweep.Rows.Select(r => r.Rho).ToArray();
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
        if (sweep.SelectedRho is { } sel)
        {
            var line = plot.Add.VerticalLine(sel);
            line.Color = Colors.Gray;
            line.LinePattern = LinePattern.Dotted;
            line.LegendText = $"selected rho = {sel.ToString("0.###", Ci)}";
        }
        plot.Title($"H2T: accuracy against rho ({sweep.Dataset}, stage II {sweep.Epochs} epoch{(sweep.Epochs == 1 ? "" : "s")})");
        plot.XLabel("fusion ratio rho (fraction of channels from the head-side image)");
        plot.YLabel("accuracy (%)");
        plot.ShowLegend(Edge.Right);
        PlotFile.SavePng(plot, pngPath, width, height);
    }
}
