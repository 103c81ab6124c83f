using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using H2T.Grid;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using Xunit.Abstractions;

namespace H2T.Tests.Grid;

/// <summary>Skipped with the reason where the cluster cannot run; with H2T_REQUIRE_SLURM=1 (CI) it runs and fails instead.</summary>
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
/// Slurm as array jobs; one stage-I task is preempted (scontrol requeue) while it trains. Every cell must finish, the
/// preempted one by resuming its checkpoint, and --collect must give the table --local gives on the same plan.
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
        string Plan(string outDir, string file) => dir.Write(file, System.Text.Encoding.UTF8.GetBytes(GridLocalTests.TinyPlan("tiny", outDir, data.Path, 3, $"""
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

        // Preempt stage-I task 1 once its first epoch is checkpointed, as a preempting scheduler does: SIGTERM to
        // the job, back to the queue.
        var victim = plan.Cells().First(c => c.Id == "stage1:1");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(victim.Folder, "last.ckpt")) && clock.Elapsed < TimeSpan.FromMinutes(4)) Thread.Sleep(50);
        Assert.True(File.Exists(Path.Combine(victim.Folder, "last.ckpt")), $"stage1:1 wrote no checkpoint in 4 minutes; squeue: {SingleNodeSlurm.TryExec("squeue").Output}; {cluster.Tail("slurmctld.log")}");
        Assert.False(GridState.IsDone(victim), "stage1:1 finished before it could be preempted");
        var task = $"{arrays["stage1"]}_1";
        var preemptedAt = slurm.Elapsed.TotalSeconds;
        SingleNodeSlurm.Exec("scontrol", "requeue", task);
        // Slurm holds every requeued batch job for about two minutes (Reason=BeginTime) before it may start again;
        // the test lifts that hold once the task is pending, so the suite does not wait it out.
        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            var (_, state) = SingleNodeSlurm.TryExec("squeue", "-h", "-j", task, "-o", "%T %r");
            if (state.StartsWith("PENDING", StringComparison.Ordinal))
            {
                if (state.Contains("BeginTime", StringComparison.Ordinal)) SingleNodeSlurm.TryExec("scontrol", "update", $"JobId={task}", "StartTime=now");
                break;
            }
            Thread.Sleep(200);
        }

        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromMinutes(6) && SingleNodeSlurm.TryExec("squeue", "-h").Output.Trim().Length > 0) Thread.Sleep(500);
        slurm.Stop();
        var queue = SingleNodeSlurm.TryExec("squeue").Output;
        var states = GridRun.Status(plan);
        Assert.True(states.All(s => s.State == CellState.Done),
            $"not every cell finished: {string.Join("; ", states.Where(s => s.State != CellState.Done).Select(s => $"{s.Cell.Id} {s.State} {s.Detail}"))}; squeue: {queue}; " +
            $"logs: {string.Join("\n", Directory.GetFiles(Path.Combine(slurmOut, "grid", "slurm"), "*.out").Select(f => $"{f}:\n{File.ReadAllText(f)}"))}");

        // The preempted task: stopped by SIGTERM after a checkpoint, requeued, resumed from that checkpoint.
        var log = File.ReadAllText(Path.Combine(victim.Folder, "log.txt"));
        Assert.Contains("stage1 interrupted in epoch", log);
        Assert.Contains("resume after epoch", log);
        var slurmLog = File.ReadAllText(Path.Combine(slurmOut, "grid", "slurm", $"stage1-{arrays["stage1"]}_1.out"));
        Assert.Contains("restart 0", slurmLog);
        Assert.Contains("restart 1", slurmLog);
        Assert.Contains("interrupted:", slurmLog);
        Assert.Contains("resuming stage1 from", slurmLog);

        (rc, text) = CliRunner.Run("grid", planFile, "--collect");
        Assert.True(rc == 0, text);
        Assert.Equal(File.ReadAllText(Path.Combine(localOut, "grid", "results.md")), File.ReadAllText(Path.Combine(slurmOut, "grid", "results.md")));

        var timings = new
        {
            measured = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            cpu = SingleNodeSlurm.TryExec("lscpu").Output.Split('\n').FirstOrDefault(l => l.StartsWith("Model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim(),
            cells = plan.Cells().Count,
            local_seconds = local.Elapsed.TotalSeconds,
            slurm_seconds = slurm.Elapsed.TotalSeconds,
            preempted = "stage1:1",
            preempted_at_seconds = preemptedAt,
            preempted_run_log = log.Split('\n').Where(l => l.Contains("interrupted", StringComparison.Ordinal) || l.Contains("resume", StringComparison.Ordinal)).ToList(),
            preempted_slurm_log = slurmLog.Split('\n').Where(l => l.StartsWith("h2t grid:", StringComparison.Ordinal) || l.Contains("CANCELLED", StringComparison.Ordinal)
                || l.StartsWith("interrupted:", StringComparison.Ordinal) || l.StartsWith("resuming", StringComparison.Ordinal)).ToList(),
            note = "local: cells one after another in this process, 1 thread each; slurm: from sbatch to an empty queue, 2 tasks at a time on 2 CPUs, one task preempted and requeued (its ~2 min BeginTime hold lifted)",
        };
        var json = JsonSerializer.Serialize(timings, Indented);
        output.WriteLine(json);
        var artifacts = Path.Combine(DataTestFiles.RepoRoot, "artifacts");
        Directory.CreateDirectory(artifacts);
        File.WriteAllText(Path.Combine(artifacts, "grid-timings.json"), json);
    }

    public void Dispose() => dir.Dispose();
}
