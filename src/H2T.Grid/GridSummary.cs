using System.Globalization;
using System.Text;
using H2T.Reporting;
using H2T.Runs;

namespace H2T.Grid;

/// <summary>One row of a grid's table: a method (stage I, a stage-II method alone at rho 0, or with H2T at the rho
/// chosen on validation) at one imbalance factor, over the seeds that finished.</summary>
public sealed record SummaryRow(string Name, double? Imbalance, IReadOnlyList<int> Seeds, int SeedsPlanned,
    double[] Mean, double[] Spread, IReadOnlyList<double> AllPerSeed, IReadOnlyList<double>? ChosenRho);

/// <summary>grid/results.md, results.json and results.png: every finished cell's test figures, as mean and sample
/// standard deviation over seeds. Only what the run folders hold goes in: a missing cell is counted, never
/// filled.</summary>
public static class GridSummary
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;
    static readonly string[] Columns = ["Head", "Medium", "Tail", "All", "ECE"];

    public static IReadOnlyList<SummaryRow> Rows(GridPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var cells = plan.Cells();
        var rows = new List<SummaryRow>();
        foreach (var group in cells.Where(c => c.Stage == GridStage.One).GroupBy(c => (c.Method, c.Imbalance)))
        {
            var one = group.Where(GridState.IsDone).Select(c => (c.Seed,
                Final: new RunFolder(c.Folder).ReadMetrics().Final)).Where(x => x.Final is not null).ToList();
            rows.Add(Row($"{group.Key.Method}, stage I", group.Key.Imbalance, group.Count(), one.Select(x => (x.Seed,
                x.Final!, (double?)null)).ToList()));
            foreach (var t in plan.StageTwo)
            {
                var twos = cells.Where(c => c.Stage == GridStage.Two && c.StageTwoMethod == t.Name &&
                    c.Method == group.Key.Method && c.Imbalance == group.Key.Imbalance).ToList();
                if (twos.Count == 0) continue;
                var sweeps = twos.Where(GridState.IsDone).Select(c => (c.Seed,
                    Sweep: SweepResult.Read(c.Folder))).ToList();
                var plain = sweeps.Select(s => (s.Seed, s.Sweep.Rows.Find(r => r.Rho == 0)?.FinalTest,
                    (double?)0)).Where(x => x.FinalTest is not null).ToList();
                if (plain.Count > 0 || sweeps.Count == 0)
                    rows.Add(Row($"{group.Key.Method} -> {t.Name} (rho = 0)", group.Key.Imbalance, twos.Count,
                        plain.Select(x => (x.Seed, x.FinalTest!, x.Item3)).ToList()));
                var chosen = sweeps.Select(s => (s.Seed,
                    s.Sweep.Rows.Find(r => r.Rho == s.Sweep.SelectedRho)?.FinalTest,
                    s.Sweep.SelectedRho)).Where(x => x.FinalTest is not null).ToList();
                rows.Add(Row($"{group.Key.Method} -> {t.Name} + H2T (rho chosen on validation)",
                    group.Key.Imbalance, twos.Count, chosen.Select(x => (x.Seed, x.FinalTest!,
                        x.SelectedRho)).ToList()));
            }
        }
        return rows;
    }

    static SummaryRow Row(string name, double? imbalance, int planned, List<(int Seed, EvaluationSummary Test,
        double? Rho)> runs)
    {
        runs.Sort((a, b) => a.Seed.CompareTo(b.Seed));
        double[] Values(EvaluationSummary t) => [t.Head, t.Medium, t.Tail, t.Top1, t.Ece];
        var mean = new double[Columns.Length];
        var spread = new double[Columns.Length];
        for (int k = 0; k < Columns.Length; k++)
        {
            var xs = runs.Select(r => Values(r.Test)[k]).ToArray();
            mean[k] = xs.Length == 0 ? double.NaN : xs.Average();
            // The sample standard deviation (n - 1): with two seeds, half their difference times sqrt(2).
            spread[k] = xs.Length < 2 ? double.NaN : Math.Sqrt(xs.Sum(x =>
                (x - mean[k]) * (x - mean[k])) / (xs.Length - 1));
        }
        var rhos = runs.All(r => r.Rho is null) ? null : runs.Select(r => r.Rho ?? double.NaN).ToList();
        return new SummaryRow(name, imbalance, runs.Select(r => r.Seed).ToList(), planned, mean, spread,
            runs.Select(r => r.Test.Top1).ToList(), rhos);
    }

    public static string Markdown(GridPlan plan, IReadOnlyList<SummaryRow> rows)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(rows);
        string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2", Ci);
        string Cell(SummaryRow r,
            int k) => double.IsNaN(r.Mean[k]) ? "-" : double.IsNaN(r.Spread[k]) ? F(r.Mean[k]) :
            $"{F(r.Mean[k])} ± {F(r.Spread[k])}";
        var sb = new StringBuilder();
        sb.Append(Ci, $"# Grid {plan.Name}\n\n");
        sb.Append("| row | IF | seeds | Head | Medium | Tail | All | ECE | All per seed | rho per seed |\n");
        sb.Append("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
        foreach (var r in rows)
        {
            var seeds = r.Seeds.Count == r.SeedsPlanned ? string.Join(", ",
                r.Seeds) : $"{string.Join(", ", r.Seeds)} ({r.Seeds.Count} of {r.SeedsPlanned} done)";
            if (r.Seeds.Count == 0) seeds = $"none of {r.SeedsPlanned} done";
            sb.Append(Ci,
                $"| {r.Name} | {(r.Imbalance is { } f ? f.ToString("0.##", Ci) : "-")} | {seeds} | {Cell(r, 0)} | " +
                $"{Cell(r, 1)} | {Cell(r, 2)} | **{Cell(r, 3)}** | {Cell(r, 4)} | ");
            sb.Append(r.AllPerSeed.Count == 0 ? "-" : string.Join(", ", r.AllPerSeed.Select(F))).Append(" | ");
            sb.Append(r.ChosenRho is { } rho ? string.Join(", ", rho.Select(x => x.ToString("0.###",
                Ci))) : "-").Append(" |\n");
        }
        sb.Append(
            "\nTest accuracy in % at each run's final epoch (groups: mean per-class accuracy; ECE in %, 15 bins): " +
            "the mean over the seeds ")
          .Append("that finished ± the sample standard deviation (n - 1), shown from two seeds on. ")
          .Append("rho = 0 is the stage-II method alone; \"+ H2T\" is the sweep's rho chosen on its validation " +
              "split, never on test.\n");
        return sb.ToString();
    }

    /// <summary>Writes results.md, results.json and results.png in grid/; returns the Markdown's path.</summary>
    public static string Write(GridPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var rows = Rows(plan);
        var dir = GridRun.GridFolder(plan);
        var md = Path.Combine(dir, "results.md");
        var png = Path.Combine(dir, "results.png");
        var plotted = rows.Where(r => r.Seeds.Count > 0)
            .Select(r => ($"{r.Name}{(r.Imbalance is { } f ? $" IF={f.ToString("0.##", Ci)}" : "")}", r.Mean[..4],
                r.Spread[..4])).ToList();
        var text = Markdown(plan, rows);
        if (plotted.Count > 0)
        {
            ComparisonReport.SpreadBars(plotted, png, $"grid {plan.Name}: test accuracy by group");
            text += "\n![results](results.png)\n";
        }
        AtomicFile.WriteJson(Path.Combine(dir, "results.json"), rows.Select(r => new
        {
            r.Name, r.Imbalance, r.Seeds, r.SeedsPlanned,
            Mean = Columns.Zip(r.Mean).ToDictionary(x => x.First, x => x.Second),
            // One seed has no spread: null in the JSON (NaN is not JSON), blank in the table.
            Spread = Columns.Zip(r.Spread).ToDictionary(x => x.First,
                x => double.IsNaN(x.Second) ? (double?)null : x.Second),
            r.AllPerSeed, r.ChosenRho,
        }).ToList());
        AtomicFile.WriteText(md, text);
        return md;
    }
}
