using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using H2T.Grid;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using Xunit.Abstractions;

namespace H2T.Tests.Grid;

/// <summary>Skipped with the reason where the cluster cannot run; with H2T_REQUIRE_SLURM=1 (CI) it runs and fails
/// instead.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RequiresSlurmFactAttribute : FactAttribute
{
    public RequiresSlurmFactAttribute()
    {
        if (SingleNodeSlurm.Missing is { } why && Environment.GetEnvironmentVariable("H2T_REQUIRE_SLURM") != "1")
            Skip = $"not run: {why}";
    }
}

/// <summary>
/// The tiny grid (Fashion-MNIST-LT, resnet8, 2 stage-I methods x 2 seeds, a rho sweep from each) submitted to a real
/// Slurm as array jobs; two stage-I tasks are stopped while they train (scontrol requeue; SIGUSR1 to the batch shell,
/// as
/// at the time limit). Every cell must finish, the stopped ones by resuming their checkpoints, and --collect must give
/// the table --local gives on the same plan.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SlurmGridTests(ITestOutputHelper output) : IDisposable
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    readonly TempDir dir = new();

    [RequiresSlurmFact]
    public void TheTinyGridFinishesUnderSlurmThroughAPreemptionAndCollectsWhatTheLocalGridGives()
    {
        // Three stage-I epochs, so the task preempted after its first checkpoint is still training.
        using var data = new FashionMnistSubset(perClassTrain: 300, perClassTest: 60);
        var h2t = $"dotnet {Path.Combine(AppContext.BaseDirectory, "h2t.dll")}";
        string Plan(string outDir, string file) => dir.Write(file, System.Text.Encoding.UTF8.GetBytes(
            GridLocalTests.TinyPlan("tiny", outDir, data.Path, 3, $"""
            slurm:
              partition: debug
              time: "00:15:00"
              cpus_per_task: 1
              mem: 1500M
              signal_seconds: 60
              h2t: {h2t}
            """)));

        var localOut = dir.File("local");
        var local = Stopwatch.StartNew();
        var (rc, text) = CliRunner.Run("grid", Plan(localOut, "local.yaml"), "--local");
        local.Stop();
        Assert.True(rc == 0, text);

        using var cluster = new SingleNodeSlurm();
        var slurmOut = dir.File("slurm");
        var planFile = Plan(slurmOut, "slurm.yaml");
        var plan = GridRun.Load(planFile);
        var slurm = Stopwatch.StartNew();
        (rc, text) = CliRunner.Run("grid", planFile, "--slurm");
        Assert.True(rc == 0, text);
        output.WriteLine(text);
        using var submitted = JsonDocument.Parse(File.ReadAllText(Path.Combine(slurmOut, "grid", "submitted.json")));
        var arrays = submitted.RootElement.GetProperty("arrays").EnumerateArray()
            .ToDictionary(a => a.GetProperty("name").GetString()!, a => a.GetProperty("job_id").GetString()!);
        Assert.Equal(["stage1", "crt"], arrays.Keys);
        var crtDependency = SingleNodeSlurm.Exec("scontrol", "show", "job", arrays["crt"]);
        Assert.Contains($"Dependency=aftercorr:{arrays["stage1"]}", crtDependency);
        Assert.Contains("KillOInInvalidDependent=Yes", crtDependency);
        // --status shows Slurm's side beside the folders': the stage-II tasks are queued behind their dependency.
        var (statusRc, status) = CliRunner.Run("grid", planFile, "--status");
        Assert.True(statusRc == 0, status);
        Assert.Matches(@"crt:3 .*waits for stage1:3 .* PENDING", status);
        // A second submission while the first is queued would make second writers of the same folders: refused.
        var (again, refused) = CliRunner.Run("grid", planFile, "--slurm");
        Assert.Equal(2, again);
        Assert.Contains("are still in the queue", refused);

        // Two ways a task is stopped, each once its first epoch is checkpointed. stage1:1 as a preempting scheduler
        // does it: SIGTERM to the whole job, which Slurm puts back in the queue (scontrol requeue). stage1:3 as the
        // time limit's warning does it with --signal=B:USR1@N: SIGUSR1 to the batch shell only, which passes it to h2t
        // as SIGTERM and, on h2t's exit code 75, requeues its own task.
        var clock = Stopwatch.StartNew();
        var preemptedAt = new Dictionary<string, double>();
        GridCell Preempt(string id, params string[] command)
        {
            var cell = plan.Cells().First(c => c.Id == id);
            clock.Restart();
            while (!File.Exists(Path.Combine(cell.Folder,
                "last.ckpt")) && clock.Elapsed < TimeSpan.FromMinutes(4)) Thread.Sleep(50);
            Assert.True(File.Exists(Path.Combine(cell.Folder, "last.ckpt")),
                $"{id} wrote no checkpoint in 4 minutes; squeue: {SingleNodeSlurm.TryExec("squeue").Output}; " +
                $"{cluster.Tail("slurmctld.log")}");
            Assert.False(GridState.IsDone(cell), $"{id} finished before it could be stopped");
            var task = $"{arrays["stage1"]}_{cell.Index}";
            preemptedAt[id] = slurm.Elapsed.TotalSeconds;
            SingleNodeSlurm.Exec(command[0], [.. command[1..], task]);
            // Slurm holds every requeued batch job for about two minutes (Reason=BeginTime) before it may start
            // again; the test lifts that hold once the task is pending, so the suite does not wait it out.
            clock.Restart();
            while (clock.Elapsed < TimeSpan.FromSeconds(90))
            {
                var (_, state) = SingleNodeSlurm.TryExec("squeue", "-h", "-j", task, "-o", "%T %r");
                if (state.StartsWith("PENDING", StringComparison.Ordinal) && state.Contains("BeginTime",
                    StringComparison.Ordinal))
                {
                    SingleNodeSlurm.TryExec("scontrol", "update", $"JobId={task}", "StartTime=now");
                    break;
                }
                Thread.Sleep(200);
            }
            return cell;
        }
        var victim = Preempt("stage1:1", "scontrol", "requeue");
        var timed = Preempt("stage1:3", "scancel", "--batch", "--signal=USR1");

        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromMinutes(6) && SingleNodeSlurm.TryExec("squeue",
            "-h").Output.Trim().Length > 0) Thread.Sleep(500);
        slurm.Stop();
        var queue = SingleNodeSlurm.TryExec("squeue").Output;
        var states = GridRun.Status(plan);
        Assert.True(states.All(s => s.State == CellState.Done),
            $"not every cell finished: " +
                string.Join("; ", states.Where(s => s.State != CellState.Done)
                    .Select(s => $"{s.Cell.Id} {s.State} {s.Detail}")) + $"; squeue: {queue}; " +
            "logs: " + string.Join("\n", Directory.GetFiles(Path.Combine(slurmOut, "grid", "slurm"), "*.out")
                .Select(f => $"{f}:\n{File.ReadAllText(f)}")));

        // Both stopped tasks: SIGTERM after a checkpoint, exit 75, requeued, resumed from that checkpoint.
        string RunLog(GridCell c) => File.ReadAllText(Path.Combine(c.Folder, "log.txt"));
        string SlurmLog(GridCell c) => File.ReadAllText(Path.Combine(slurmOut, "grid", "slurm",
            $"stage1-{arrays["stage1"]}_{c.Index}.out"));
        foreach (var c in new[] { victim, timed })
        {
            Assert.Contains("stage1 interrupted in epoch", RunLog(c));
            Assert.Contains("resume after epoch", RunLog(c));
            foreach (var said in new[] { "restart 0", "restart 1", "interrupted:", "resuming stage1 from" })
                Assert.True(SlurmLog(c).Contains(said, StringComparison.Ordinal),
                    $"{c.Id}'s Slurm log does not say '{said}':\n{SlurmLog(c)}");
        }
        // The time-limit path went through the script: the batch shell passed the warning on and requeued its own
        // task. The preempted task was requeued by Slurm, not by its script (which would also requeue a scancel).
        Assert.Contains("SIGUSR1 at", SlurmLog(timed));
        Assert.Contains("passed to h2t as SIGTERM", SlurmLog(timed));
        Assert.Contains("requeueing it", SlurmLog(timed));
        Assert.DoesNotContain("requeueing it", SlurmLog(victim));
        var log = RunLog(victim) + RunLog(timed);
        var slurmLog = SlurmLog(victim) + SlurmLog(timed);

        (rc, text) = CliRunner.Run("grid", planFile, "--collect");
        Assert.True(rc == 0, text);
        Assert.Equal(File.ReadAllText(Path.Combine(localOut, "grid", "results.md")),
            File.ReadAllText(Path.Combine(slurmOut, "grid", "results.md")));

        var timings = new
        {
            measured = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            // lscpu's model name with family, model and the bf16 / AMX flags: what a timing is quoted with.
            cpu = H2T.Runtime.CpuFeatures.Host.ToString(),
            cells = plan.Cells().Count,
            local_seconds = local.Elapsed.TotalSeconds,
            slurm_seconds = slurm.Elapsed.TotalSeconds,
            stopped =
                "stage1:1 by scontrol requeue (preemption), stage1:3 by scancel --batch --signal=USR1 (the time " +
                "limit's --signal=B:USR1)",
            stopped_at_seconds = preemptedAt,
            preempted_run_log = log.Split('\n').Where(l => l.Contains("interrupted",
                StringComparison.Ordinal) || l.Contains("resume", StringComparison.Ordinal)).ToList(),
            preempted_slurm_log = slurmLog.Split('\n').Where(l => l.StartsWith("h2t grid:",
                StringComparison.Ordinal) || l.Contains("CANCELLED", StringComparison.Ordinal)
                || l.StartsWith("interrupted:", StringComparison.Ordinal) || l.StartsWith("resuming",
                    StringComparison.Ordinal)).ToList(),
            note = "local: cells one after another in this process, 1 thread each; slurm: from sbatch to an empty " +
                "queue, 2 tasks at a time on 2 CPUs, two tasks stopped and requeued (their ~2 min BeginTime hold " +
                "lifted)",
        };
        var json = JsonSerializer.Serialize(timings, Indented);
        output.WriteLine(json);
        var artifacts = Path.Combine(DataTestFiles.RepoRoot, "artifacts");
        Directory.CreateDirectory(artifacts);
        File.WriteAllText(Path.Combine(artifacts, "grid-timings.json"), json);
    }

    public void Dispose() => dir.Dispose();
}
