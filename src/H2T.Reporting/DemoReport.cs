using H2T.Runs;
using H2T.Settings;


namespace H2T.Reporting;

/// <summary>
/// The demo's OUT/report.md: the comparison table, group bars and per-class accuracy against count (report.png,
/// report-per-class.png) and the paper's Figure 4 for rho = 0 against H2T (embedding.png: head class 0, tail class 9).
/// </summary>
public static class DemoReport
{
    /// <summary>Writes the report; plots that fail are left out and their reason returned (the report is still
    /// written).</summary>
    /// <param name="embedding">Figure 4's panels (rho = 0 and the H2T row, from <see
    /// cref="H2T.Inference.FeatureProjection"/>), or
    /// null when they could not be computed.</param>
    public static (string Path, IReadOnlyList<string> Warnings) Write(string outDir, string stageOne, SweepResult sweep,
        H2T.Inference.EmbeddingProjection? embedding)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        var dir = System.IO.Path.GetFullPath(outDir);
        var rows = new List<RunRow> { ComparisonReport.Load(stageOne) with { Name = "stage I" } };
        rows.AddRange(sweep.Rows.Select(r => ComparisonReport.Load(r.RunFolder) with
            { Name = r.Rho == 0 ? "stage II rho=0" : $"stage II rho={r.Rho} (H2T)" }));
        var images = new List<string>();
        var warnings = new List<string>();
        try
        {
            images.AddRange(ComparisonReport.Plots(rows, System.IO.Path.Combine(dir, "report.png"),
                "Fashion-MNIST-LT: test accuracy by group"));
            if (embedding is not null)
            {
                var png = System.IO.Path.Combine(dir, "embedding.png");
                EmbeddingPlot.Write(embedding, png);
                images.Add(png);
            }
        }
        catch (Exception e) when (e is IOException or ConfigException or InvalidOperationException)
        {
            warnings.Add($"plots not written: {e.Message}");
        }
        var path = System.IO.Path.Combine(dir, "report.md");
        AtomicFile.WriteText(path, ComparisonReport.Markdown(rows, "H2T.NET demo: Fashion-MNIST-LT, IF = 100", images,
            dir,
            $"rho selected on validation: {sweep.SelectedRho}; the sweep's own table: stage2/sweep.md. Each run " +
                $"folder has its report.md (curves, per-class, reliability)."));
        return (path, warnings);
    }
}
