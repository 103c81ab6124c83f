using H2T.Grid;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;

namespace H2T.Tests.Grid;

/// <summary>A plan read into cells: folders, command lines, Slurm scripts, and errors that name the plan's
/// line.</summary>
public sealed class GridPlanTests : IDisposable
{
    readonly TempDir dir = new();

    string Plan(string yaml, string name = "plan.yaml") => dir.Write(name, System.Text.Encoding.UTF8.GetBytes(yaml));

    const string Two = """
        name: two
        out: OUT
        seeds: [0, 1]
        imbalance: [100, 50]
        threads: 1
        stage1:
          ce:
            set:
              backbone: resnet8
              num_epochs: 2
              mixup: false
          bsce:
            set:
              loss.type: bsce
        stage2:
          crt:
            rho: 0:0.5:0.25
            val_per_class: 5
            set:
              num_epochs: 1
        slurm:
          partition: debug
          time: "00:10:00"
          cpus_per_task: 1
          extra: ["--exclusive"]
        """;

    [Fact]
    public void CellsAreMethodsTimesImbalanceTimesSeedsThenEachStageTwoFromItsStageOne()
    {
        var plan = GridRun.Load(Plan(Two.Replace("OUT", dir.File("runs"), StringComparison.Ordinal)));
        var cells = plan.Cells();
        Assert.Equal(8 + 8, cells.Count);
        Assert.Equal(["stage1:0", "stage1:1", "stage1:2", "stage1:3"], cells.Take(4).Select(c => c.Id));
        Assert.Equal(dir.File("runs/ce/if100/s1/stage1"), cells[1].Folder);
        Assert.Equal(dir.File("runs/bsce/if50/s0/stage1"), cells[6].Folder);
        var crt = cells.Where(c => c.Stage == GridStage.Two).ToList();
        // Task i of the stage-II array starts from stage-I task i: what aftercorr pairs.
        Assert.All(crt, c => Assert.Equal(c.Index, c.After!.Index));
        Assert.Equal(dir.File("runs/bsce/if50/s1/crt"), crt[7].Folder);

        var one = plan.Arguments(cells[2], threads: 4);
        Assert.Equal(["stage1", "backbone=resnet8", "num_epochs=2", "mixup=false", "imb_factor=50", "seed=0", "--out",
            cells[2].Folder, "--resume", "--threads", "1"], one);
        var two = plan.Arguments(crt[3], threads: null);
        Assert.Equal(["sweep", "num_epochs=1", "sweep.rho=0:0.5:0.25", "val_per_class=5", "seed=1", "--from",
            Path.Combine(crt[3].After!.Folder, "last.ckpt")], two.Take(7));
        Assert.Equal(["ce", "crt:3"], new[] { crt[3].Method, crt[3].Id });
    }

    [Theory]
    [InlineData("seeds: [0, 1]", "seeds: [0, 0]", ":3: seeds: expected distinct seeds >= 0")]
    [InlineData("imbalance: [100, 50]", "imbalance: [0.01]",
        ":4: imbalance: expected imbalance factors n_max / n_min >= 1 (100, not 0.01), got 0.01")]
    [InlineData("threads: 1", "threads: 0", ":5: threads: expected a whole number >= 1")]
    [InlineData("mixup: false", "mixupp: false", ":11: unknown key 'mixupp'")]
    [InlineData("loss.type: bsce", "loss.type: bogus", ":14: ")]
    [InlineData("rho: 0:0.5:0.25", "rho: 0:x:0.25", ":17: stage2.crt.rho '0:x:0.25': 'x' is not a number")]
    [InlineData("cpus_per_task: 1", "cpus_per_task: 0", ":24: slurm.cpus_per_task: expected a whole number >= 1")]
    [InlineData("imbalance: [100, 50]", "imbalance: [100, 50, 100.001]",
        ":4: imbalance: imbalance factor 100.001 appears twice")]
    [InlineData("threads: 1", "device: gpu", ":5: device: expected cpu, cuda or cuda:N, got 'gpu'")]
    [InlineData("  crt:\n", "  stage1:\n",
        ":17: stage2.stage1.rho: method name 'stage1': reserved for the stage-I runs' folders")]
    [InlineData("name: two", "name: 'two#x'", ": name 'two#x': expected letters, digits, '-' or '_'")]
    public void ABadPlanFailsBeforeAnythingRunsNamingTheLine(string good, string bad, string message)
    {
        var path = Plan(Two.Replace(good, bad, StringComparison.Ordinal));
        var e = Assert.ThrowsAny<ConfigException>(() => GridRun.Load(path));
        Assert.Contains(path + message, e.Message);
        if (bad.Contains("bogus", StringComparison.Ordinal)) Assert.Contains("bogus", e.Message);
    }

    [Fact]
    public void UnknownPlanKeysAndMissingPartsAreNamed()
    {
        var e = Assert.Throws<ConfigException>(() => GridRun.Load(Plan(Two.Replace("threads: 1", "thread: 1",
            StringComparison.Ordinal))));
        Assert.Contains(":5: unknown plan key 'thread' (expected name, out, seeds", e.Message);
        e = Assert.Throws<ConfigException>(() =>
            GridRun.Load(Plan("name: x\nstage1:\n  ce:\n    set:\n      lr: 0.1\n")));
        Assert.Contains("seeds: missing", e.Message);
        e = Assert.Throws<ConfigException>(() => GridRun.Load(Plan(Two.Replace("slurm:",
            "  las:\n    from: [cee]\nslurm:", StringComparison.Ordinal), "from.yaml")));
        Assert.Contains("no stage-I method 'cee' (the plan has: ce, bsce)", e.Message);
        e = Assert.Throws<ConfigException>(() =>
            GridRun.Load(Plan("name: x\nseeds: [0]\nstage1:\n  'a b':\n    set:\n      lr: 0.1\n", "name.yaml")));
        Assert.Contains("method name 'a b'", e.Message);
        var (rc, output) = CliRunner.Run("grid", dir.File("none.yaml"), "--status");
        Assert.Equal(2, rc);
        Assert.Contains("none.yaml: config file not found", output);
        (rc, output) = CliRunner.Run("grid", Plan(Two), "--local", "--status");
        Assert.Equal(2, rc);
        Assert.Contains("choose one of --local, --slurm, --status, --collect or --cell ID", output);
    }

    [Fact]
    public void OnlySelectsCellsByIdSeedImbalanceOrMethod()
    {
        var cells = GridRun.Load(Plan(Two)).Cells();
        Assert.Equal(["stage1:1", "stage1:5", "crt:1", "crt:5"], GridRun.Select(cells,
            "seed=1,imbalance=100").Select(c => c.Id));
        Assert.Equal(["stage1:0", "crt:0"], GridRun.Select(cells, "stage1:0,crt:0").Select(c => c.Id));
        Assert.Equal(8, GridRun.Select(cells, "method=bsce").Count);
        Assert.Contains("selects no cell", Assert.Throws<ConfigException>(() => GridRun.Select(cells,
            "seed=7")).Message);
        Assert.Contains("no cell 'stage1:99'", Assert.Throws<ConfigException>(() => GridRun.Select(cells,
            "stage1:99")).Message);
    }

    [Fact]
    public void TheDryRunPrintsArrayJobsWithRequeueSignalAndAftercorrAndWritesNothing()
    {
        // A folder with a space and a '%': sbatch splits #SBATCH lines at white space and expands % in --output.
        var outDir = dir.File("my runs/100%");
        var path = Plan(Two.Replace("OUT", $"'{outDir}'", StringComparison.Ordinal).Replace("threads: 1",
            "threads: 1\ndevice: cuda:1", StringComparison.Ordinal));
        var (rc, output) = CliRunner.Run("grid", path, "--slurm", "--dry-run");
        Assert.True(rc == 0, output);
        foreach (var line in new[]
        {
            "#SBATCH --array=0-7", "#SBATCH --requeue", "#SBATCH --signal=B:USR1@120", "#SBATCH --open-mode=append",
                "#SBATCH --partition=debug",
            $"#SBATCH --output=\"{outDir.Replace("%", "%%", StringComparison.Ordinal)}/grid/slurm/stage1-%A_%a.out\"",
                "#SBATCH --kill-on-invalid-dep=yes",
            "trap 'on_signal USR1' USR1", "slurm.max_requeues 20",
            "#SBATCH --time=00:10:00", "#SBATCH --cpus-per-task=1", "#SBATCH --exclusive",
                "--cell stage1:\"$SLURM_ARRAY_TASK_ID\"", "--cell crt:\"$SLURM_ARRAY_TASK_ID\"",
            "scontrol requeue \"$task\"", "--dependency=aftercorr:", "(dry run: nothing written, nothing submitted)",
        })
            Assert.Contains(line, output);
        Assert.False(Directory.Exists(outDir));
        // The plan's device goes to every cell's command line (the task's GPU under gres: gpu:1).
        var plan = GridRun.Load(path);
        Assert.Equal(["--device", "cuda:1"], plan.Arguments(plan.Cells()[0], threads: null).TakeLast(2));
        Assert.Equal("0-3,5,7-8", SlurmGrid.Range([0, 1, 2, 3, 5, 7, 8]));
    }

    public void Dispose() => dir.Dispose();
}
