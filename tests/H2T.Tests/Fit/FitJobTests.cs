using System.Text.Json;
using H2T.Configuration;
using H2T.Fit;
using H2T.Runs;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using Xunit.Abstractions;

namespace H2T.Tests.Fit;

/// <summary>
/// <c>h2t fit</c> end to end on a tiny real folder: real CIFAR-10 JPEGs as a user's class folders with falling counts
/// and no test/ folder, the NuGet ResNet-18, a short budget. It must check and split the data, measure a plan, train,
/// choose on validation, and leave the run page, the ONNX model (which ONNX Runtime runs to the checkpoint's
/// answers), the model card and summary.json; a second call without --resume is refused, with it nothing is trained
/// again.
/// </summary>
public sealed class FitJobTests(ITestOutputHelper output)
{
    static readonly int[] Counts = [30, 20, 14, 10, 8];

    /// <summary>Class folders of real images, long-tailed: the first five CIFAR classes, train and test images
    /// together.</summary>
    internal static string ClassFolders(string root)
    {
        using var sample = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(sample.Path, perClass: 10);
        var data = Path.Combine(root, "my photos");
        var classes = Directory.GetDirectories(Path.Combine(DataTestFiles.CifarJpgSample, "train"))
            .Order(StringComparer.Ordinal).Take(Counts.Length).ToList();
        for (int c = 0; c < classes.Count; c++)
        {
            var name = Path.GetFileName(classes[c]);
            var target = Path.Combine(data, name);
            Directory.CreateDirectory(target);
            var files = Directory.GetFiles(classes[c], "*.jpg").Order(StringComparer.Ordinal)
                .Select(f => (f, "train-"))
                .Concat(Directory.GetFiles(Path.Combine(DataTestFiles.CifarJpgSample, "test", name), "*.jpg")
                    .Order(StringComparer.Ordinal).Select(f => (f, "test-")))
                .Take(Counts[c]);
            foreach (var (f, prefix) in files) File.Copy(f, Path.Combine(target, prefix + Path.GetFileName(f)));
        }
        return data;
    }

    [Fact]
    public void AFolderOfClassFoldersBecomesAnEvaluatedExportedModelWithinItsBudget()
    {
        using var dir = new TempDir();
        var data = ClassFolders(dir.Path);
        var job = Path.Combine(dir.Path, "job");
        var (rc, text) = CliRunner.Run("fit", data, "--time-limit", "4m", "--image-size", "32", "--out", job,
            "--threads", "2", "--batch-size", "16", "--rho", "0.3");
        output.WriteLine(text);
        Assert.True(rc == 0, text);
        // Checked and split before any training, and said so.
        Assert.Contains("class folders", text);
        Assert.Contains("imbalance factor", text);
        Assert.Contains("plan: ", text);
        Assert.Contains("because", text);
        Assert.Contains("serve it: h2t serve", text);
        foreach (var f in new[] { "data/train.csv", "data/val.csv", "data/test.csv", "data/classes.csv", "plan.json",
                     "summary.json", "model.onnx", "MODEL_CARD.md", "report.html", "stage1/last.ckpt",
                     "stage2/sweep.json" })
            Assert.True(File.Exists(Path.Combine(job, f)), $"{f} missing");
        Assert.False(Directory.Exists(Path.Combine(job, FitJob.ProbeFolder)), "the measurements' runs are left");

        var summary = JsonSerializer.Deserialize<FitResult>(File.ReadAllText(Path.Combine(job, "summary.json")),
            AtomicFile.Json)!;
        Assert.InRange(summary.MeanPerClass, 0, 100);
        Assert.False(double.IsNaN(summary.Head) || double.IsNaN(summary.Medium) || double.IsNaN(summary.Tail),
            "a group is empty");
        Assert.Contains(summary.Chosen, summary.Validation.Keys);
        Assert.Equal(summary.Validation.Values.Max(), summary.Validation[summary.Chosen]);
        Assert.True(summary.Plan.Candidates.Count >= 1);
        Assert.All(summary.Plan.Candidates, c => Assert.True(c.TrainImagesPerSecond > 0));
        var card = File.ReadAllText(Path.Combine(job, "MODEL_CARD.md"));
        Assert.Contains("| Head | Medium | Tail |", card);
        Assert.Contains("airplane", card);

        // The exported model, in ONNX Runtime, gives the checkpoint's answers on the test split.
        var eval = H2T.Training.Evaluator.EvaluateCheckpoint(summary.Checkpoint, TorchSharp.torch.CPU,
            precision: ComputePrecision.Fp32);
        var splits = H2T.Data.DatasetCatalog.Load(FitJob.Data(summary.Plan, Path.Combine(job, "data")));
        using (var onnx = H2T.Inference.ImageClassifier.Load(Path.Combine(job, "model.onnx"),
            new H2T.Inference.ClassifierOptions { Engine = InferenceEngine.OnnxRuntime }))
        {
            var ort = onnx.Evaluate(splits.Test, splits.Groups, 64);
            Assert.Equal(eval.Result.Confusion, ort.Confusion);
        }

        // Again without --resume: refused, nothing touched. With it: every step reused.
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(job, "stage1", "last.ckpt"));
        var (rc2, text2) = CliRunner.Run("fit", data, "--out", job, "--threads", "2");
        Assert.Equal(2, rc2);
        Assert.Contains("--resume", text2);
        var (rc3, text3) = CliRunner.Run("fit", data, "--out", job, "--threads", "2", "--resume", "--time-limit",
            "4m", "--image-size", "32", "--batch-size", "16", "--rho", "0.3", "--epochs", "50");
        Assert.True(rc3 == 0, text3);
        Assert.Contains("reusing the checked split", text3);
        Assert.Contains("plan: reusing", text3);
        // The one option changed is named: the kept plan does not follow it.
        Assert.Contains("--resume keeps the job's plan: epochs 50, planned", text3);
        Assert.DoesNotContain("time limit 4m", text3);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(job, "stage1", "last.ckpt")));
    }

    [Fact]
    public void AJobStoppedInStageOneKeepsWhatFinishedAndResumesFromThere()
    {
        using var dir = new TempDir();
        var data = ClassFolders(dir.Path);
        var job = Path.Combine(dir.Path, "job");
        var options = new FitOptions
        {
            Data = data, Out = job, TimeLimit = TimeSpan.FromMinutes(3), ImageSize = 32, BatchSize = 16,
            Tuning = FitTuning.Frozen, Epochs = 3, Rhos = [0.3],
        };
        using var stop = new CancellationTokenSource();
        var observer = new StopIn("stage I", stop);
        Assert.ThrowsAny<OperationCanceledException>(() =>
            FitJob.Run(options, TorchSharp.torch.CPU, observer, stop.Token));
        // The split and the plan were kept, and the time spent; no summary yet.
        Assert.True(File.Exists(Path.Combine(job, "data", "train.csv")));
        Assert.True(File.Exists(Path.Combine(job, FitJob.PlanFile)));
        Assert.False(File.Exists(Path.Combine(job, FitJob.SummaryFile)));
        var state = FitState.Read(job)!;
        Assert.True(state.SpentSeconds > 0);

        var result = FitJob.Run(options with { Resume = true }, TorchSharp.torch.CPU);
        Assert.True(File.Exists(Path.Combine(job, FitJob.SummaryFile)));
        Assert.Equal(FitTuning.Frozen, result.Plan.Tuning);
        Assert.True(result.WallSeconds >= state.SpentSeconds, "the resumed job's time includes the first part's");
    }

    /// <summary>Cancels the job once the named step has made some progress: what Ctrl-C does between
    /// batches.</summary>
    sealed class StopIn(string step, CancellationTokenSource stop) : IFitObserver
    {
        public void Message(string text) { }

        public void Progress(FitProgress progress)
        {
            if (progress.Step == step && progress.Fraction > 0) stop.Cancel();
        }
    }

    [Fact]
    public void BadInputIsRefusedByTheCommandBeforeAnythingIsWritten()
    {
        using var dir = new TempDir();
        var job = Path.Combine(dir.Path, "job");
        var empty = Path.Combine(dir.Path, "empty");
        Directory.CreateDirectory(empty);
        var (rc, text) = CliRunner.Run("fit", empty, "--out", job);
        Assert.Equal(2, rc);
        Assert.Contains(empty, text);
        Assert.False(Directory.Exists(job), "a refused job left its folder");

        // One class, then a class with one image: named, and still nothing written.
        var data = ClassFolders(dir.Path);
        var classes = Directory.GetDirectories(data).Order(StringComparer.Ordinal).ToList();
        var one = Path.Combine(dir.Path, "one");
        Directory.CreateDirectory(one);
        Directory.Move(classes[0], Path.Combine(one, Path.GetFileName(classes[0])));
        (rc, text) = CliRunner.Run("fit", one, "--out", job);
        Assert.Equal(2, rc);
        Assert.Contains("at least 2 classes", text);
        foreach (var f in Directory.GetFiles(classes[^1]).Skip(1)) File.Delete(f);
        (rc, text) = CliRunner.Run("fit", data, "--out", job);
        Assert.Equal(2, rc);
        Assert.Contains($"'{Path.GetFileName(classes[^1])}'", text);
        Assert.False(Directory.Exists(job), "a refused job left its folder");

        // A decompression bomb among the images: refused from its header, named with the limit and the flag.
        var bombs = Path.Combine(dir.Path, "bombs");
        foreach (var c in new[] { "a", "b" })
        {
            Directory.CreateDirectory(Path.Combine(bombs, c));
            foreach (var f in Directory.GetFiles(classes[1]).Take(4))
                File.Copy(f, Path.Combine(bombs, c, Path.GetFileName(f)));
        }
        File.Copy(Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Data", "Fixtures", "fit",
            "bomb.png"), Path.Combine(bombs, "a", "bomb.png"));
        (rc, text) = CliRunner.Run("fit", bombs, "--out", job);
        Assert.Equal(2, rc);
        Assert.Contains("bomb.png", text);
        Assert.Contains("89,478,485", text);
        Assert.Contains("--max-pixels", text);
        Assert.False(Directory.Exists(job), "a refused job left its folder");

        // The job folder inside the data is refused: its folders would be read as classes.
        (rc, text) = CliRunner.Run("fit", data, "--out", Path.Combine(data, "fit"));
        Assert.Equal(2, rc);
        Assert.Contains("inside the data", text);
    }

    [Fact]
    public void TheOneTableServesFlagsFileAndOverridesWithTheLaterWinning()
    {
        using var dir = new TempDir();
        var yaml = Path.Combine(dir.Path, "fit.yaml");
        File.WriteAllText(yaml, "fit:\n  time_limit: 30m\n  preset: fast\n  rhos: [0.2, 0.4]\n  epochs: 7\n");
        var entries = ConfigReader.ReadFile(yaml).Append(new ConfigEntry("data", "x", null, "argument"))
            .Append(ConfigReader.ReadOverride("fit.epochs=9")).Append(new ConfigEntry("time_limit", "1h5m", null,
                "--time-limit 1h5m"));
        var o = FitKeys.Bind(entries);
        Assert.Equal(TimeSpan.FromMinutes(65), o.TimeLimit);
        Assert.Equal(FitPreset.Fast, o.Preset);
        Assert.Equal([0.2, 0.4], o.Rhos);
        Assert.Equal(9, o.Epochs);

        File.WriteAllText(yaml, "fit:\n  time_limit: 30m\n  epoch: 7\n");
        var e = Assert.Throws<ConfigException>(() => FitKeys.Bind(ConfigReader.ReadFile(yaml)
            .Append(new ConfigEntry("data", "x", null, "argument"))));
        Assert.Contains("fit.yaml:3", e.Message);
        Assert.Contains("not a fit key", e.Message);
        var bad = Assert.Throws<ConfigException>(() => FitKeys.Bind([new ConfigEntry("data", "x", null, "a"),
            new ConfigEntry("time_limit", "ten minutes", null, "--time-limit ten minutes")]));
        Assert.Contains("--time-limit ten minutes", bad.Message);
        Assert.Contains("10m", bad.Message);
        var tuning = Assert.Throws<ConfigException>(() => FitKeys.Bind([new ConfigEntry("data", "x", null, "a"),
            new ConfigEntry("tuning", "lora", null, "--tuning lora")]));
        Assert.Contains("frozen, ssf, last-stage, full", tuning.Message);
    }

    [Fact]
    public void EveryFitFlagIsAFitKeyAndEveryKeyButTheDataHasAFlag()
    {
        var flags = typeof(H2T.Cli.Commands.FitSettings).GetProperties()
            .Select(p => (p, o: p.GetCustomAttributes(typeof(Spectre.Console.Cli.CommandOptionAttribute), true)
                .Cast<Spectre.Console.Cli.CommandOptionAttribute>().FirstOrDefault()))
            .Where(x => x.o is not null && !x.p.IsDefined(typeof(H2T.Cli.Commands.RunOptionAttribute), true))
            .Select(x => "--" + x.o!.LongNames[0]).ToHashSet();
        foreach (var f in flags) Assert.True(FitKeys.FlagKey(f) is not null, $"{f} has no fit key");
        foreach (var k in FitKeys.All.Where(k => k.Flag is not null))
            Assert.True(flags.Contains(k.Flag!), $"key {k.Name}'s flag {k.Flag} is not on the command");
    }

    [Theory]
    [InlineData("10m", 600)]
    [InlineData("1h30m", 5400)]
    [InlineData("90s", 90)]
    [InlineData("1.5h", 5400)]
    [InlineData("25", 1500)]
    public void DurationsReadAsUsersWriteThem(string text, double seconds) =>
        Assert.Equal(seconds, FitKeys.ParseDuration(new ConfigEntry("time_limit", text, null, "t")).TotalSeconds);

    [Fact]
    public void ThePlannerGivesTheEpochsThatFitAndRefusesTooFew()
    {
        var work = new FitWorkload(Train: 10_000, Validation: 500, Test: 2_000, Classes: 10, MedianSide: 64);
        var o = new FitOptions { Data = "x", TimeLimit = TimeSpan.FromMinutes(30) };
        // 100 train / 300 eval images a second: 100 s an epoch; fixed cost about 42 + 87 + 27 s.
        var c = FitPlanner.Fit(o, work, FitTuning.Full, 112, (100, 300), spentSeconds: 60);
        Assert.True(c.Fits);
        Assert.Equal(12, c.Epochs); // capped at the full fine-tune's 12
        var tight = FitPlanner.Fit(o with { TimeLimit = TimeSpan.FromMinutes(8) }, work, FitTuning.Full, 112,
            (100, 300), 60);
        Assert.False(tight.Fits);
        Assert.Contains("fewer than 4", tight.Note);
        var frozen = FitPlanner.Fit(o with { TimeLimit = TimeSpan.FromMinutes(8) }, work, FitTuning.Frozen, 112,
            (400, 400), 60);
        Assert.True(frozen.Fits);
        Assert.InRange(frozen.Epochs, 2, 30);
        // Best first: full, last stage, SSF, frozen; fast: frozen only.
        Assert.Equal(FitTuning.Full, FitPlanner.Candidates(o, "resnet18_cntk", 64)[0].Tuning);
        Assert.All(FitPlanner.Candidates(o with { Preset = FitPreset.Fast }, "resnet18_cntk", 64),
            x => Assert.Equal(FitTuning.Frozen, x.Tuning));
    }

    [Fact]
    public void TheBarMovesForwardAndItsTimeLeftFollowsThePace()
    {
        var seen = new List<FitProgress>();
        var observer = new Recorder(seen);
        var t = new FitTracker(observer, TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(30));
        t.Steps([("a", 10), ("b", 30)]);
        t.Begin("a");
        t.At(0.5);
        t.Begin("b");
        t.At(0.5);
        t.At(1);
        Assert.Equal(seen.Select(p => p.Fraction).Order(), seen.Select(p => p.Fraction));
        Assert.Equal(1, seen[^1].Fraction, 6);
        Assert.True(seen[^1].Elapsed >= TimeSpan.FromSeconds(30), "the time spent before a resume is counted");
        Assert.Throws<InvalidOperationException>(() => t.Begin("c"));
    }

    sealed class Recorder(List<FitProgress> seen) : IFitObserver
    {
        public void Message(string text) { }
        public void Progress(FitProgress progress) => seen.Add(progress);
    }
}
