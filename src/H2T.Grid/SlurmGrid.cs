using System.Diagnostics;
using System.Globalization;
using System.Text;
using H2T.Runs;
using H2T.Settings;

namespace H2T.Grid;

/// <summary>One sbatch submission: its name, the cells' array (<c>stage1</c> or a stage-II method: their ids are
/// <c>CellArray:index</c>), the array job it waits for, and the job id Slurm gave it.</summary>
public sealed record SlurmArray(string Name, string CellArray, string Script, IReadOnlyList<int> Indices,
    string? AfterArray, string? JobId = null);

/// <summary>What <c>--slurm</c> wrote and (unless a dry run) submitted; kept as grid/submitted.json.</summary>
public sealed record SlurmSubmission(string Plan, string SubmittedAt, IReadOnlyList<SlurmArray> Arrays);

/// <summary>
/// A grid as Slurm array jobs: one array for the stage-I cells, one per stage-II method with
/// <c>--dependency=aftercorr</c> on the stage-I array (task i of a stage-II array starts when stage-I task i has
/// finished successfully). Each task runs <c>h2t grid PLAN --cell ARRAY:$SLURM_ARRAY_TASK_ID</c> on the plan frozen
/// at submission. Stops: <c>--signal=B:USR1@N</c> (the time limit's warning) and <c>--requeue</c>; the script passes
/// USR1 and TERM (scancel, preemption) to h2t as SIGTERM; h2t stops between batches, keeps its last checkpoint and
/// exits 75; after USR1 only, the script requeues its own task (a preempted one Slurm requeues itself).
/// </summary>
public static class SlurmGrid
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    /// <summary>Writes grid/plan.yaml (the frozen plan) and one sbatch script per array, for the cells not yet done;
    /// submits them unless <paramref name="dryRun"/>. <paramref name="h2t"/> is the command that runs h2t on the nodes
    /// when the plan does not say (slurm.h2t).</summary>
    public static SlurmSubmission Submit(GridPlan plan, IReadOnlyList<string> h2t, bool dryRun, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(h2t);
        ArgumentNullException.ThrowIfNull(log);
        var dir = GridRun.GridFolder(plan);
        var slurmDir = Path.Combine(dir, "slurm");
        var frozen = Path.Combine(dir, "plan.yaml");
        var command = plan.Slurm.H2t is { } own ? own.Split(' ', StringSplitOptions.RemoveEmptyEntries) : h2t.ToArray();
        // Tasks of an earlier submission still in the queue would be second writers of the same run folders.
        if (!dryRun && Queue(plan) is { Count: > 0 } queued)
            throw new ConfigException(
                $"{SubmittedFile(plan)}: this grid's jobs are still in the queue " +
                $"({string.Join("; ", queued.Take(5).Select(q => $"{q.Key} {q.Value}"))}" +
                $"{(queued.Count > 5 ? "; ..." : "")}); wait for them or scancel them, then submit again");
        var cells = plan.Cells();
        var arrays = new List<SlurmArray>();
        var stageOneTodo = cells.Where(c => c.Stage == GridStage.One && !GridState.IsDone(c)).Select(c =>
            c.Index).ToList();
        if (stageOneTodo.Count > 0) arrays.Add(new SlurmArray("stage1", "stage1", Path.Combine(slurmDir,
            "stage1.sbatch"), stageOneTodo, null));
        foreach (var group in cells.Where(c => c.Stage == GridStage.Two).GroupBy(c => c.Array))
        {
            var todo = group.Where(c => !GridState.IsDone(c)).ToList();
            // aftercorr pairs task i with stage-I task i, so cells whose stage I is done (not in the stage-I array)
            // go in an array of their own, without the dependency.
            var ready = todo.Where(c => !stageOneTodo.Contains(c.After!.Index)).Select(c => c.Index).ToList();
            var after = todo.Where(c => stageOneTodo.Contains(c.After!.Index)).Select(c => c.Index).ToList();
            // Only if the stage-II array's task ids are the stage-I ids can aftercorr pair them.
            var paired = group.All(c => c.Index == c.After!.Index);
            if (!paired && after.Count > 0)
                throw new ConfigException(
                    $"{plan.File}: stage2.{group.Key}.from: a stage-II method that starts from only some stage-I " +
                    $"methods cannot be paired task for task with the stage-I array; run its stage I first (--slurm " +
                    $"again submits it without a dependency), or list every stage-I method");
            var readyName = after.Count > 0 ? $"{group.Key}-ready" : group.Key;
            if (ready.Count > 0) arrays.Add(new SlurmArray(readyName, group.Key, Path.Combine(slurmDir,
                $"{readyName}.sbatch"), ready, null));
            if (after.Count > 0) arrays.Add(new SlurmArray(group.Key, group.Key, Path.Combine(slurmDir,
                $"{group.Key}.sbatch"), after, "stage1"));
        }
        if (arrays.Count == 0)
        {
            log($"grid {plan.Name}: every cell is done; nothing to submit (h2t grid {plan.File} --collect)");
            return new SlurmSubmission(frozen, DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss'Z'", Ci), []);
        }
        if (!dryRun)
        {
            // Slurm does not create the folder of --output; the tasks read this copy, not the plan being edited.
            Directory.CreateDirectory(slurmDir);
            AtomicFile.WriteText(frozen, File.ReadAllText(plan.File));
        }
        var submitted = new List<SlurmArray>();
        foreach (var a in arrays)
        {
            var script = Script(plan, a, frozen, slurmDir, command);
            if (!dryRun) AtomicFile.WriteText(a.Script, script);
            var dependency = a.AfterArray is { } on ? submitted.First(s => s.Name == on).JobId : null;
            var sbatchArgs = new List<string> { "--parsable" };
            if (dependency is not null) sbatchArgs.Add($"--dependency=aftercorr:{dependency}");
            sbatchArgs.Add(a.Script);
            if (dryRun)
            {
                log($"# {a.Script}");
                log(script);
                log($"sbatch {string.Join(' ', sbatchArgs.Select(GridRun.Quote))}");
                submitted.Add(a with { JobId = $"<{a.Name} job id>" });
                continue;
            }
            var id = Sbatch(sbatchArgs);
            log($"{a.Name}: submitted job {id} (array " +
                $"{Range(a.Indices)}" +
                $"{(dependency is null ? "" : $", each task after stage-I task {dependency}_i succeeds")}); " +
                $"script {a.Script}");
            submitted.Add(a with { JobId = id });
            // After every sbatch, not once at the end: if a later one fails (a QOS limit), the arrays already in the
            // queue are on record, and a second --slurm is refused while they run instead of submitting them again.
            AtomicFile.WriteJson(SubmittedFile(plan), new SlurmSubmission(frozen,
                DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss'Z'", Ci), submitted));
        }
        if (dryRun) log("(dry run: nothing written, nothing submitted)");
        return new SlurmSubmission(frozen, DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss'Z'", Ci), submitted);
    }

    static string SubmittedFile(GridPlan plan) => Path.Combine(GridRun.GridFolder(plan), "submitted.json");

    /// <summary>Where Slurm has the grid's cells now (squeue, array tasks one per line): "RUNNING", "PENDING
    /// (Dependency)", ... by cell id; empty when the grid was never submitted or nothing of it is queued.</summary>
    public static IReadOnlyDictionary<string, string> Queue(GridPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var file = SubmittedFile(plan);
        var states = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(file)) return states;
        SlurmSubmission? submission;
        try { submission = System.Text.Json.JsonSerializer.Deserialize<SlurmSubmission>(File.ReadAllText(file),
            AtomicFile.Json); }
        catch (System.Text.Json.JsonException) { return states; }
        var arrays = (submission?.Arrays ?? []).Where(a => a.JobId is not null).ToDictionary(a => a.JobId!,
            a => a.CellArray);
        if (arrays.Count == 0) return states;
        int rc;
        string output;
        try { (rc, output, _) = Run("squeue", ["-h", "-r", "-o", "%i %T %r", "-j", string.Join(',', arrays.Keys)]); }
        catch (ConfigException) { return states; }
        if (rc != 0) return states;
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ', 3);
            var id = parts[0].Split('_');
            if (id.Length != 2 || !arrays.TryGetValue(id[0], out var array)) continue;
            var reason = parts.Length > 2 && parts[2] is not ("None" or "") ? $" ({parts[2]})" : "";
            states[$"{array}:{id[1]}"] = parts.Length > 1 ? parts[1] + reason : "?";
        }
        return states;
    }

    /// <summary>Slurm's compact list of array indices: 0-3,5.</summary>
    public static string Range(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var parts = new List<string>();
        for (int i = 0; i < indices.Count;)
        {
            int j = i;
            while (j + 1 < indices.Count && indices[j + 1] == indices[j] + 1) j++;
            parts.Add(i == j ? indices[i].ToString(Ci) : string.Create(Ci, $"{indices[i]}-{indices[j]}"));
            i = j + 1;
        }
        return string.Join(',', parts);
    }

    public static string Script(GridPlan plan, SlurmArray array, string frozenPlan, string logDir,
        IReadOnlyList<string> h2t)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(array);
        ArgumentNullException.ThrowIfNull(h2t);
        var s = plan.Slurm;
        var cellArray = array.CellArray;
        var sb = new StringBuilder();
        sb.Append("#!/bin/bash\n");
        sb.Append(Ci,
            $"# h2t grid {plan.Name}: {(cellArray == "stage1" ? "stage-I" : $"stage-II '{cellArray}'")} cells, one " +
            $"per array task. Written by h2t grid --slurm.\n");
        void D(string line) => sb.Append("#SBATCH ").Append(line).Append('\n');
        D($"--job-name=h2t-{plan.Name}-{cellArray}");
        D($"--array={Range(array.Indices)}{(s.MaxParallel > 0 ? $"%{s.MaxParallel.ToString(Ci)}" : "")}");
        D($"--cpus-per-task={s.CpusPerTask.ToString(Ci)}");
        D($"--mem={s.Mem}");
        D($"--time={s.Time}");
        if (s.Partition is { } p) D($"--partition={p}");
        if (s.Account is { } acc) D($"--account={acc}");
        if (s.Qos is { } q) D($"--qos={q}");
        if (s.Gres is { } g) D($"--gres={g}");
        // sbatch splits #SBATCH lines at white space outside double quotes, and expands % in --output.
        var output = Path.Combine(logDir.Replace("%", "%%", StringComparison.Ordinal), $"{cellArray}-%A_%a.out");
        D($"--output={SbatchQuote(output)}");
        D("--open-mode=append");
        D("--requeue");
        // USR1, not TERM: scancel and preemption send TERM too, and only the time limit's signal must requeue.
        D($"--signal=B:USR1@{s.SignalSeconds.ToString(Ci)}");
        D($"--chdir={SbatchQuote(Directory.GetCurrentDirectory())}");
        // A stage-II task whose stage I failed would otherwise pend forever (DependencyNeverSatisfied).
        if (array.AfterArray is not null) D("--kill-on-invalid-dep=yes");
        foreach (var extra in s.Extra) D(extra);
        var words = string.Join(' ', h2t.Select(GridRun.Quote));
        var cpus = s.CpusPerTask.ToString(Ci) + "}";
        sb.Append(Ci, $$"""
            set -u
            task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
            restarts="${SLURM_RESTART_COUNT:-0}"
            echo "h2t grid: task $task (job $SLURM_JOB_ID) on $(hostname) at $(date -u '+%F %T')Z, restart $restarts"
            # USR1 is the time limit's warning (--signal=B:USR1): stop h2t and requeue. TERM is scancel or a
            # preemption: stop h2t; Slurm requeues a preempted task itself and leaves a cancelled one cancelled.
            # The traps come first, so a signal before h2t starts is not lost.
            child=""; stop=""; requeue=""
            on_signal() {
              echo "h2t grid: SIG$1 at $(date -u '+%F %T')Z, passed to h2t as SIGTERM"
              stop=1; [ "$1" = USR1 ] && requeue=1
              [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
            }
            trap 'on_signal USR1' USR1
            trap 'on_signal TERM' TERM
            # h2t runs in the background so that this shell can take the signals while it runs.
            {{words}} grid {{GridRun.Quote(frozenPlan)}} --cell {{cellArray}}:"$SLURM_ARRAY_TASK_ID" \
              --threads "${SLURM_CPUS_PER_TASK:-{{cpus}}" &
            child=$!
            [ -n "$stop" ] && kill -TERM "$child" 2>/dev/null
            while :; do
              wait "$child"; rc=$?
              # Above 128: a trapped signal ended wait early, or h2t died of a signal. Wait again while it runs;
              # if it ended meanwhile, its status is still to be collected (127 when there is none left).
              [ "$rc" -gt 128 ] || break
              kill -0 "$child" 2>/dev/null && continue
              wait "$child" 2>/dev/null; last=$?
              [ "$last" -ne 127 ] && rc=$last
              break
            done
            if [ "$rc" -eq {{GridRun.Interrupted.ToString(Ci)}} ] && [ -n "$requeue" ]; then
              if [ "$restarts" -ge {{s.MaxRequeues.ToString(Ci)}} ]; then
                echo "h2t grid: task $task stopped at the time limit after $restarts restarts" \
                  "(slurm.max_requeues {{s.MaxRequeues.ToString(Ci)}}): not requeued;" \
                  "raise slurm.time, then h2t grid --slurm again"
                exit "$rc"
              fi
              echo "h2t grid: task $task stopped after its last checkpoint; requeueing it"
              scontrol requeue "$task" && exit 0
            fi
            exit "$rc"

            """);
        return sb.ToString();
    }

    /// <summary>An #SBATCH value as sbatch reads it: in double quotes when it holds white space or quotes.</summary>
    static string SbatchQuote(string value) =>
        value.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '#') ? "\"" + value.Replace("\"", "\\\"",
            StringComparison.Ordinal) + "\"" : value;

    /// <summary>Runs sbatch and returns the job id it prints with --parsable (id or id;cluster).</summary>
    static string Sbatch(IReadOnlyList<string> args)
    {
        var (rc, output, errors) = Run("sbatch", args);
        if (rc != 0) throw new ConfigException(
            $"sbatch {string.Join(' ', args)}: exit code {rc}: {(errors + output).Trim()}");
        var id = output.Trim().Split('\n')[^1].Split(';')[0].Trim();
        if (id.Length == 0 ||
            !id.All(char.IsAsciiDigit)) throw new ConfigException(
            $"sbatch {string.Join(' ', args)}: expected a job id, got '{output.Trim()}'");
        return id;
    }

    /// <summary>A Slurm client command: its exit code, stdout and stderr.</summary>
    static (int Rc, string Output, string Errors) Run(string command, IReadOnlyList<string> args)
    {
        var psi = new ProcessStartInfo(command) { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi) ?? throw new ConfigException($"{command}: could not start"); }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ConfigException(
                $"{command}: not found on PATH ({e.Message}); --slurm submits from a machine with Slurm's client " +
                $"commands (--dry-run prints the scripts anywhere)");
        }
        using (p)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            var stdout = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, stdout, stderr.Result);
        }
    }
}
