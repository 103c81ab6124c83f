using System.Diagnostics;
using System.Globalization;
using H2T.Runs;
using H2T.Settings;

namespace H2T.Grid;

/// <summary>Runs an h2t command line and returns its exit code. The CLI passes its own entry point, so the grid runs
/// each cell exactly as the user would type it (and a Slurm task runs it the same way).</summary>
public delegate int CellInvoker(IReadOnlyList<string> arguments);

/// <summary>What <see cref="GridRun.Local"/> did.</summary>
public sealed record LocalOutcome(int Ran, int Skipped, IReadOnlyList<string> Failed, bool Interrupted, double WallSeconds);

/// <summary>Running a grid's cells on this machine, one after another, or one cell as a Slurm task.</summary>
public static class GridRun
{
    /// <summary>The exit code of a run stopped by SIGTERM / SIGINT after its last checkpoint (EX_TEMPFAIL): a Slurm
    /// task requeues itself on it, and --resume continues it.</summary>
    public const int Interrupted = 75;

    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>The plan as it is read for running: every cell bound once, so nothing starts from a broken plan.</summary>
    public static GridPlan Load(string planFile)
    {
        var plan = GridPlan.Read(planFile);
        plan.Validate();
        return plan;
    }

    /// <summary>Every cell in order; finished ones are skipped, partial ones resumed. A failed stage I leaves its stage
    /// II cells waiting, the rest of the grid goes on. An interrupted cell (exit 75) stops the grid, to be resumed.</summary>
    public static LocalOutcome Local(GridPlan plan, CellInvoker invoke, Action<string> log, string? only = null, int? threads = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(invoke);
        ArgumentNullException.ThrowIfNull(log);
        var clock = Stopwatch.StartNew();
        var cells = Select(plan.Cells(), only);
        int ran = 0, skipped = 0, n = 0;
        var failed = new List<string>();
        foreach (var cell in cells)
        {
            n++;
            var head = string.Create(Ci, $"[{n}/{cells.Count}] {cell.Id} {cell.Label}");
            if (GridState.IsDone(cell))
            {
                skipped++;
                log($"{head}: done, skipped");
                continue;
            }
            if (cell.After is { } s1 && !GridState.IsDone(s1))
            {
                failed.Add(cell.Id);
                log($"{head}: not run, its stage I ({s1.Id}) did not finish");
                continue;
            }
            var args = plan.Arguments(cell, threads);
            log($"{head}: h2t {string.Join(' ', args.Select(Quote))}");
            var rc = invoke(args);
            ran++;
            if (rc == Interrupted)
            {
                log($"{head}: interrupted; run the grid again to resume it");
                return new LocalOutcome(ran, skipped, failed, true, clock.Elapsed.TotalSeconds);
            }
            if (rc != 0 || !GridState.IsDone(cell))
            {
                failed.Add(cell.Id);
                log(string.Create(Ci, $"{head}: failed (exit code {rc}); the other cells go on"));
            }
        }
        log(string.Create(Ci, $"grid {plan.Name}: {ran} cells run, {skipped} already done, {failed.Count} not finished{(failed.Count > 0 ? $" ({string.Join(", ", failed)})" : "")}; {clock.Elapsed.TotalSeconds:F0} s"));
        return new LocalOutcome(ran, skipped, failed, false, clock.Elapsed.TotalSeconds);
    }

    /// <summary>One cell, by its id (<c>stage1:3</c>): what a Slurm array task runs. A finished cell is not run again.</summary>
    public static int Cell(GridPlan plan, string id, int? threads, CellInvoker invoke, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(invoke);
        ArgumentNullException.ThrowIfNull(log);
        var cells = plan.Cells();
        var cell = cells.FirstOrDefault(c => c.Id == id)
            ?? throw new ConfigException($"--cell {id}: no such cell in {plan.File} (cells: {Ids(cells)})");
        if (GridState.IsDone(cell))
        {
            log($"{cell.Id} {cell.Label}: done already ({cell.Folder})");
            return 0;
        }
        if (cell.After is { } s1 && !GridState.IsDone(s1))
            throw new ConfigException($"--cell {id}: its stage I {s1.Id} has not finished ({s1.Folder})");
        var args = plan.Arguments(cell, threads);
        log($"{cell.Id} {cell.Label}: h2t {string.Join(' ', args.Select(Quote))}");
        return invoke(args);
    }

    /// <summary>The cells an <c>--only</c> filter keeps: comma-separated cell ids (stage1:3) or selectors seed=N,
    /// imbalance=F, method=NAME (a stage-I method: its stage-II cells come with it), all of which must hold.</summary>
    public static IReadOnlyList<GridCell> Select(IReadOnlyList<GridCell> cells, string? only)
    {
        ArgumentNullException.ThrowIfNull(cells);
        if (only is null) return cells;
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var tests = new List<Func<GridCell, bool>>();
        foreach (var part in only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=');
            if (eq < 0)
            {
                if (!cells.Any(c => c.Id == part)) throw new ConfigException($"--only {only}: no cell '{part}' (cells: {Ids(cells)})");
                ids.Add(part);
                continue;
            }
            var (key, value) = (part[..eq], part[(eq + 1)..]);
            tests.Add(key switch
            {
                "seed" when int.TryParse(value, NumberStyles.Integer, Ci, out var s) => c => c.Seed == s,
                "imbalance" when double.TryParse(value, NumberStyles.Float, Ci, out var f) => c => c.Imbalance == f,
                "method" => c => c.Method == value || c.StageTwoMethod == value,
                _ => throw new ConfigException($"--only {only}: '{part}': expected a cell id (stage1:3) or seed=N, imbalance=F, method=NAME"),
            });
        }
        var kept = cells.Where(c => (ids.Count == 0 || ids.Contains(c.Id)) && tests.All(t => t(c))).ToList();
        if (kept.Count == 0) throw new ConfigException($"--only {only}: selects no cell");
        return kept;
    }

    static string Ids(IReadOnlyList<GridCell> cells) =>
        string.Join(", ", cells.GroupBy(c => c.Array).Select(g => string.Create(Ci, $"{g.Key}:0..{g.Count() - 1}")));

    public static IReadOnlyList<CellStatus> Status(GridPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return plan.Cells().Select(GridState.Of).ToList();
    }

    /// <summary>A word as a POSIX shell reads it back (for printed commands and the sbatch scripts).</summary>
    public static string Quote(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,+@%".Contains(c, StringComparison.Ordinal))
            ? word : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>Where the grid keeps its own files: the frozen plan, the sbatch scripts, Slurm's logs, the results.</summary>
    public static string GridFolder(GridPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return Path.GetFullPath(Path.Combine(plan.Out, "grid"));
    }
}
