using System.Diagnostics;
using System.Globalization;
using H2T.Runs;
using H2T.Settings;
using H2T.Training;
using TorchSharp;

namespace H2T.Grid;

/// <summary>
/// What the application running a grid does around each cell, which the grid itself runs through the library's entry
/// point (<see cref="ExperimentRun"/>) with the config its plan bound: start libtorch and the device, show the run's
/// progress and print its results (the CLI prints a cell as its stage1 and sweep commands print a run), and report a
/// failure with its exit code.
/// </summary>
public interface ICellHost
{
    /// <summary>libtorch with this many threads (null: all cores), and the device (cpu, cuda, cuda:N).</summary>
    torch.Device Start(int? threads, string device);

    /// <summary>Trains the prepared run: calls <paramref name="train"/> with the host's observer, prints the
    /// results.</summary>
    ExperimentOutcome Train(ExperimentRun run, Func<ITrainingObserver, ExperimentOutcome> train);

    /// <summary>Reports a cell that did not finish and returns its exit code (<see cref="GridRun.Interrupted"/> when it
    /// was stopped by <c>SIGTERM</c> / <c>SIGINT</c>).</summary>
    int Failed(Exception failure);
}

/// <summary>What <see cref="GridRun.Local"/> did.</summary>
public sealed record LocalOutcome(int Ran, int Skipped, IReadOnlyList<string> Failed, bool Interrupted,
    double WallSeconds);

/// <summary>Running a grid's cells on this machine, one after another, or one cell as a Slurm task.</summary>
public static class GridRun
{
    /// <summary>The exit code of a run stopped by SIGTERM / SIGINT after its last checkpoint (EX_TEMPFAIL): a Slurm
    /// task requeues itself on it, and --resume continues it.</summary>
    public const int Interrupted = 75;

    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>The plan as it is read for running: every cell bound once, so nothing starts from a broken
    /// plan.</summary>
    public static GridPlan Load(string planFile)
    {
        return GridPlan.Read(planFile).Bind();
    }

    /// <summary>Every cell in order; finished ones are skipped, partial ones resumed. A failed stage I leaves its stage
    /// II cells waiting, the rest of the grid goes on. An interrupted cell (exit 75) stops the grid, to be
    /// resumed.</summary>
    public static LocalOutcome Local(GridPlan plan, ICellHost host, Action<string> log, string? only = null,
        int? threads = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(host);
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
            // The command line that runs the cell by hand (a Slurm task runs it): the cell's bound config, as words.
            log($"{head}: h2t {string.Join(' ', plan.Arguments(cell, threads).Select(Quote))}");
            var rc = Run(plan, cell, threads, host, cancel);
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
        log(string.Create(Ci,
            $"grid {plan.Name}: {ran} cells run, {skipped} already done, {failed.Count} not " +
            $"finished{(failed.Count > 0 ? $" ({string.Join(", ", failed)})" : "")}; {clock.Elapsed.TotalSeconds:F0} " +
                $"s"));
        return new LocalOutcome(ran, skipped, failed, false, clock.Elapsed.TotalSeconds);
    }

    /// <summary>One cell, by its id (<c>stage1:3</c>): what a Slurm array task runs. A finished cell is not run
    /// again.</summary>
    public static int Cell(GridPlan plan, string id, int? threads, ICellHost host, Action<string> log,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(host);
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
        log($"{cell.Id} {cell.Label}: h2t {string.Join(' ', plan.Arguments(cell, threads).Select(Quote))}");
        return Run(plan, cell, threads, host, cancel);
    }

    /// <summary>One cell through the library's entry point, with the config the plan bound: its exit code (0 when it
    /// finished; <see cref="Interrupted"/>; else what the host says of the failure).</summary>
    static int Run(GridPlan plan, GridCell cell, int? threads, ICellHost host, CancellationToken cancel)
    {
        try
        {
            var device = host.Start(plan.Threads ?? threads, plan.Device ?? "cpu");
            var run = plan.Prepare(cell);
            host.Train(run, observer => run.Run(device, observer, cancel));
            return 0;
        }
#pragma warning disable CA1031 // a failed cell is reported and the grid goes on, whatever failed, as with a process
        catch (Exception e)
#pragma warning restore CA1031
        {
            return host.Failed(e);
        }
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
                if (!cells.Any(c =>
                    c.Id == part)) throw new ConfigException($"--only {only}: no cell '{part}' (cells: {Ids(cells)})");
                ids.Add(part);
                continue;
            }
            var (key, value) = (part[..eq], part[(eq + 1)..]);
            tests.Add(key switch
            {
                "seed" when int.TryParse(value, NumberStyles.Integer, Ci, out var s) => c => c.Seed == s,
                "imbalance" when double.TryParse(value, NumberStyles.Float, Ci, out var f) => c => c.Imbalance == f,
                "method" => c => c.Method == value || c.StageTwoMethod == value,
                _ => throw new ConfigException(
                    $"--only {only}: '{part}': expected a cell id (stage1:3) or seed=N, imbalance=F, method=NAME"),
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
        return word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,+@%".Contains(c,
            StringComparison.Ordinal))
            ? word : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>Where the grid keeps its own files: the frozen plan, the sbatch scripts, Slurm's logs, the
    /// results.</summary>
    public static string GridFolder(GridPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return Path.GetFullPath(Path.Combine(plan.Out, "grid"));
    }
}
