using System.Diagnostics;
using H2T.Runs;
using H2T.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;
using H2T.Training;

namespace H2T.Tests.Cli;

/// <summary>The training commands end to end, in-process and as a real process that is killed and resumed.</summary>
public sealed class TrainingCommandsTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    static (int Rc, string Output) Run(params string[] args) => CliRunner.Run(args);

    string[] StageOneArgs(string outDir, int epochs) =>
        ["stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor", "10", "--epochs",
            epochs.ToString(System.Globalization.CultureInfo.InvariantCulture),
         "--backbone", "resnet20", "--batch-size", "32", "--lr", "0.05", "--out", outDir, "--threads", "2"];

    [Fact]
    public void Stage1Stage2AndEvalRunFromTheCommandLine()
    {
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, output) = Run(StageOneArgs(s1, 2));
        Assert.True(rc == 0, output);
        Assert.Contains("stage I", output);
        Assert.Contains("Head", output);

        var s2 = Path.Combine(runs.Path, "s2");
        (rc, output) = Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0.5", "--epochs", "2",
            "--batch-size", "32", "--out", s2);
        Assert.True(rc == 0, output);
        Assert.Contains("rho=0.5", output);
        Assert.True(new RunFolder(s2).ReadMetrics().Completed);

        var json = Path.Combine(runs.Path, "eval.json");
        (rc, output) = Run("eval", "--checkpoint", Path.Combine(s2, "last.ckpt"), "--out", json);
        Assert.True(rc == 0, output);
        Assert.Contains("top-1", output);
        Assert.Contains("\"per_class_accuracy\"", File.ReadAllText(json));
    }

    [Fact]
    public void SweepTrainsEveryRhoInOnePassAndWritesTableAndPlot()
    {
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, output) = Run(StageOneArgs(s1, 1));
        Assert.True(rc == 0, output);
        var sweep = Path.Combine(runs.Path, "sweep");
        (rc, output) = Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0:0.5:0.25", "--epochs", "1",
            "--batch-size", "32",
            "--val-per-class", "3", "--out", sweep);
        Assert.True(rc == 0, output);
        Assert.Contains("(selected)", output);
        foreach (var r in new[] { "rho0", "rho0.25", "rho0.5" })
            Assert.True(new RunFolder(Path.Combine(sweep, r)).ReadMetrics().Completed, r);
        var md = File.ReadAllText(Path.Combine(sweep, "sweep.md"));
        Assert.Contains("| 0.25", md);
        Assert.Contains("Selected rho", md);
        Assert.Contains("held out of training", md);
        var png = File.ReadAllBytes(Path.Combine(sweep, "sweep.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.True(png.Length > 10_000, $"plot is only {png.Length} bytes");
        Assert.True(File.Exists(Path.Combine(sweep, "selected.ckpt")));

        (rc, output) = Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0:2:0.5", "--out", sweep);
        Assert.Equal(2, rc);
        Assert.Contains("rho must lie in [0, 1]", output);
    }

    [Theory]
    [InlineData("--loss", "nope", "unknown loss")]
    [InlineData("--lr", "-0.1", "lr must be > 0")]
    [InlineData("--epochs", "0", "epochs must be >= 1")]
    [InlineData("--backbone", "vgg", "unknown backbone")]
    [InlineData("--imb-type", "linear", "--imb-type")]
    public void BadStage1OptionsExitWithTwoAndOneMessage(string option, string value, string message)
    {
        var args = StageOneArgs(Path.Combine(runs.Path, "bad"), 1).ToList();
        int at = args.IndexOf(option);
        if (at >= 0) args[at + 1] = value; else args.AddRange([option, value]);
        var (rc, output) = Run([.. args]);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains(message, output);
        Assert.False(File.Exists(Path.Combine(runs.Path, "bad", "last.ckpt")));
    }

    [Fact]
    public void BadCheckpointsExitWithTwo()
    {
        var (rc, output) = Run("stage2", "--from", Path.Combine(runs.Path, "missing.ckpt"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("not found", output);
        var junk = Path.Combine(runs.Path, "junk.ckpt");
        File.WriteAllText(junk, "not a checkpoint at all");
        (rc, output) = Run("eval", "--checkpoint", junk);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("not an H2T.NET checkpoint", output);
        (rc, output) = Run("stage2", "--from", junk, "--rho", "1.5");
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("rho", output);
    }

    [Fact]
    public void DemoRunsBothStagesAndPrintsTheComparison()
    {
        // IF = 100 needs at least 100 images in the head class for the smallest class to keep one.
        using var big = new TinyLongTailedSet(perClassTrain: 120, perClassTest: 5);
        var outDir = Path.Combine(runs.Path, "demo");
        string[] args = ["demo", "--data", big.Path, "--stage1-epochs", "1", "--stage2-epochs", "1", "--val-per-class",
            "4", "--out", outDir];
        var (rc, output) = Run(args);
        Assert.True(rc == 0, output);
        Assert.Contains("stage II rho=0 (re-balancing)", output);
        Assert.Contains("stage II rho=0.5 (H2T)", output);
        Assert.Contains("stage II rho=0.25 (H2T)", output);
        Assert.Contains("vs rho=0", output);
        Assert.Contains("validation: 40 images", output);
        foreach (var run in new[] { "stage1", "stage2/rho0", "stage2/rho0.25", "stage2/rho0.5" })
            Assert.True(new RunFolder(Path.Combine(outDir, run)).ReadMetrics().Completed, run);
        Assert.True(File.Exists(Path.Combine(outDir, "stage2", "sweep.md")));
        Assert.True(File.Exists(Path.Combine(outDir, "stage2", "sweep.png")));
        // --resume reuses the finished runs instead of training again.
        (rc, output) = Run([.. args, "--resume"]);
        Assert.True(rc == 0, output);
        Assert.Contains("reusing the finished run", output);
    }

    [Fact]
    public void CorruptDataAndMissingRunFoldersExitWithTwoAndWriteNothing()
    {
        using var broken = new TempDir();
        foreach (var f in Directory.GetFiles(set.Path)) File.Copy(f, broken.File(Path.GetFileName(f)));
        // truncated header
        File.WriteAllBytes(broken.File("train-images-idx3-ubyte.gz"), DataTestFiles.Gzip([0, 0, 8, 3, 0, 0]));
        var outDir = Path.Combine(runs.Path, "corrupt");
        var args = StageOneArgs(outDir, 1);
        args[Array.IndexOf(args, "--data") + 1] = broken.Path;
        var (rc, output) = Run(args);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("train-images-idx3-ubyte.gz", output);
        Assert.False(Directory.Exists(outDir), "a run that fails validation must not leave a folder");

        var missing = Path.Combine(runs.Path, "no-such-run");
        (rc, output) = Run("report", missing);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public void KilledRunResumesToTheSameNumberOfEpochsWithoutLosingResults()
    {
        var s1 = Path.Combine(runs.Path, "killed");
        var h2t = Path.Combine(AppContext.BaseDirectory, "h2t.dll");
        const int epochs = 4;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        psi.ArgumentList.Add(h2t);
        foreach (var a in StageOneArgs(s1, epochs)) psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!)
        {
            p.OutputDataReceived += (_, _) => { };
            p.ErrorDataReceived += (_, _) => { };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            // Wait until the first epoch is checkpointed, then kill mid-way through a later epoch.
            var metrics = Path.Combine(s1, "metrics.json");
            var clock = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(s1,
                "last.ckpt")) && clock.Elapsed < TimeSpan.FromSeconds(120) && !p.HasExited) Thread.Sleep(20);
            Assert.False(p.HasExited, "the run finished before it could be killed; make it longer");
            Thread.Sleep(300);
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        var before = new RunFolder(s1).ReadMetrics();
        Assert.False(before.Completed);
        Assert.InRange(before.Epochs.Count, 1, epochs - 1);
        var meta = Checkpoint.ReadMeta(Path.Combine(s1, "last.ckpt"));
        // metrics.json is written before the checkpoint, so a kill between the two leaves one extra epoch there.
        Assert.InRange(meta.Epoch, before.Epochs.Count - 2, before.Epochs.Count - 1);

        var (rc, output) = Run([.. StageOneArgs(s1, epochs), "--resume"]);
        Assert.True(rc == 0, output);
        Assert.Contains("resuming", output);
        var after = new RunFolder(s1).ReadMetrics();
        Assert.True(after.Completed);
        Assert.Equal(Enumerable.Range(0, epochs), after.Epochs.Select(e => e.Epoch));
        // Epochs finished before the kill are kept as they were.
        Assert.Equal(before.Epochs.Take(meta.Epoch + 1).Select(e => e.TrainLoss),
            after.Epochs.Take(meta.Epoch + 1).Select(e => e.TrainLoss));
        Assert.Empty(Directory.GetFiles(s1, "*.tmp"));
    }

    /// <summary>SIGTERM (Slurm's preemption and time limit): the run stops between batches, keeps the checkpoint of
    /// its last finished epoch, releases the folder and exits 75; --resume then replays exactly what the run that was
    /// never stopped did, epoch for epoch.</summary>
    [Fact]
    public void ASigtermedRunExits75ReleasesItsFolderAndResumesToTheUninterruptedRun()
    {
        const int epochs = 4;
        var whole = Path.Combine(runs.Path, "whole");
        var (rc, output) = Run(StageOneArgs(whole, epochs));
        Assert.True(rc == 0, output);

        var s1 = Path.Combine(runs.Path, "termed");
        string printed;
        using (var p = StartH2t(StageOneArgs(s1, epochs)))
        {
            var text = new System.Text.StringBuilder();
            p.OutputDataReceived += (_, e) => { lock (text) text.AppendLine(e.Data); };
            p.ErrorDataReceived += (_, e) => { lock (text) text.AppendLine(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            var clock = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(s1,
                "last.ckpt")) && clock.Elapsed < TimeSpan.FromSeconds(120) && !p.HasExited) Thread.Sleep(20);
            Assert.False(p.HasExited, "the run finished before it could be stopped; make it longer");
            Thread.Sleep(150);
            using (var kill = Process.Start("kill", ["-TERM",
                p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
            Assert.True(p.WaitForExit(60_000), "SIGTERM did not stop the run within 60 s");
            p.WaitForExit();
            lock (text) printed = text.ToString();
            Assert.True(p.ExitCode == CliApp.Interrupted, $"exit code {p.ExitCode}: {printed}");
        }
        Assert.Contains("interrupted", printed);
        Assert.Contains("--resume", printed);
        // The lock is released (no owner left behind), nothing half-written, the log says where it stopped.
        Assert.False(File.Exists(Path.Combine(s1, RunFolderLock.OwnerFileName)));
        Assert.Empty(Directory.GetFiles(s1, "*.tmp"));
        Assert.Contains("stage1 interrupted in epoch", File.ReadAllText(Path.Combine(s1, "log.txt")));
        var before = new RunFolder(s1).ReadMetrics();
        Assert.False(before.Completed);
        var meta = Checkpoint.ReadMeta(Path.Combine(s1, "last.ckpt"));
        // A clean stop leaves metrics.json and last.ckpt at the same epoch (a kill may leave one apart).
        Assert.Equal(before.Epochs.Count - 1, meta.Epoch);
        Assert.InRange(meta.Epoch, 0, epochs - 2);

        (rc, output) = Run([.. StageOneArgs(s1, epochs), "--resume"]);
        Assert.True(rc == 0, output);
        Assert.Contains("resuming", output);
        var after = new RunFolder(s1).ReadMetrics();
        var reference = new RunFolder(whole).ReadMetrics();
        Assert.True(after.Completed);
        Assert.Equal(reference.Epochs.Select(e => e.TrainLoss), after.Epochs.Select(e => e.TrainLoss));
        Assert.Equal(reference.Final, after.Final);
    }

    [Fact]
    public void AStageTwoAndAnEvaluationInAnotherPrecisionThanStageOneWorkAndSaySo()
    {
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, output) = Run(StageOneArgs(s1, 1));
        Assert.True(rc == 0, output);
        Assert.Equal("fp32", Checkpoint.ReadMeta(Path.Combine(s1, "last.ckpt")).Precision);

        var s2 = Path.Combine(runs.Path, "s2-bf16");
        (rc, output) = Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0.5", "--epochs", "1",
            "--batch-size", "32", "--out", s2, "--precision", "bf16");
        Assert.True(rc == 0, output);
        Assert.Contains("precision bf16 (stage I ran in fp32)", File.ReadAllText(Path.Combine(s2, "log.txt")));
        Assert.Contains("\"precision\": \"bf16\"", File.ReadAllText(Path.Combine(s2, "config.json")));
        Assert.Equal("bf16", Checkpoint.ReadMeta(Path.Combine(s2, "last.ckpt")).Precision);
        // The weights in a bf16 run's checkpoint are fp32.
        using (var models = Checkpoint.Open(Path.Combine(s2, "last.ckpt")))
            Assert.All(models.Head.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.Float32, p.dtype));

        (rc, output) = Run("eval", "--checkpoint", Path.Combine(s1, "last.ckpt"), "--precision", "bf16");
        Assert.True(rc == 0, output);
        Assert.Contains("evaluated in bf16 (trained in fp32)", output.ReplaceLineEndings(""));
        (rc, output) = Run("eval", "--checkpoint", Path.Combine(s1, "last.ckpt"), "--precision", "fp8");
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("expected fp32, bf16 or auto", output);
    }

    [Fact]
    public void ARelativeDataPathIsStoredAbsoluteAndMovedDataIsNamedWithTheWayOut()
    {
        // Stage I from one folder with a relative --data, stage II from another.
        var data = Path.Combine(runs.Path, "data");
        Directory.CreateDirectory(data);
        foreach (var f in Directory.GetFiles(set.Path)) File.Copy(f, Path.Combine(data, Path.GetFileName(f)));
        string[] args = ["stage1", "--dataset", "fashion-mnist", "--data", "data", "--imb-factor", "10", "--epochs",
            "1", "--backbone", "resnet8",
            "--batch-size", "32", "--out", "s1", "--threads", "2"];
        using (var p = StartH2t(args, runs.Path))
        {
            var text = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, text);
        }
        var ckpt = Path.Combine(runs.Path, "s1", "last.ckpt");
        Assert.Equal(data, CheckpointData.Of(ckpt, Checkpoint.ReadMeta(ckpt)).DataPath);
        var (rc, output) = Run("stage2", "--from", ckpt, "--rho", "0.5", "--epochs", "1", "--batch-size", "32", "--out",
            Path.Combine(runs.Path, "s2"));
        Assert.True(rc == 0, output);

        var moved = Path.Combine(runs.Path, "moved");
        Directory.Move(data, moved);
        (rc, output) = Run("stage2", "--from", ckpt, "--rho", "0.5", "--epochs", "1", "--batch-size", "32", "--out",
            Path.Combine(runs.Path, "s2b"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains($"stage I read its data from {data}, which is not there any more (moved?); pass --data PATH",
            output.ReplaceLineEndings(""));
        (rc, output) = Run("stage2", "--from", ckpt, "--rho", "0.5", "--epochs", "1", "--batch-size", "32", "--out",
            Path.Combine(runs.Path, "s2b"), "--data", moved);
        Assert.True(rc == 0, output);
        // eval names the way out too; the stage-II checkpoint records where its data was read, so it needs no --data.
        (rc, output) = Run("eval", "--checkpoint", ckpt);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains($"stage I read its data from {data}, which is not there any more (moved?); pass --data PATH",
            output.ReplaceLineEndings(""));
        var s2b = Path.Combine(runs.Path, "s2b", "last.ckpt");
        Assert.Equal(moved, CheckpointData.Of(s2b, Checkpoint.ReadMeta(s2b)).DataPath);
        (rc, output) = Run("eval", "--checkpoint", s2b);
        Assert.True(rc == 0, output);
        // A stage-II checkpoint whose data then moves says so as stage II.
        var movedAgain = Path.Combine(runs.Path, "moved-again");
        Directory.Move(moved, movedAgain);
        (rc, output) = Run("eval", "--checkpoint", s2b);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains($"stage II read its data from {moved}, which is not there any more (moved?); pass --data PATH",
            output.ReplaceLineEndings(""));
        (rc, output) = Run("eval", "--checkpoint", s2b, "--data", movedAgain);
        Assert.True(rc == 0, output);
    }

    static Process StartH2t(IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "h2t.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    [Fact]
    public void ASecondWriterOfARunFolderIsRefusedByEveryCommandAndAKilledWritersFolderResumes()
    {
        // A finished stage I to start the stage-II commands from.
        var done = Path.Combine(runs.Path, "done");
        var (rc, output) = Run(StageOneArgs(done, 1));
        Assert.True(rc == 0, output);
        var ckpt = Path.Combine(done, "last.ckpt");

        var busy = Path.Combine(runs.Path, "busy");
        using var first = StartH2t(StageOneArgs(busy, 200));
        var firstOut = new System.Text.StringBuilder();
        first.OutputDataReceived += (_, e) => { lock (firstOut) firstOut.AppendLine(e.Data); };
        first.ErrorDataReceived += (_, _) => { };
        first.BeginOutputReadLine();
        first.BeginErrorReadLine();
        try
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(busy,
                "log.txt")) && clock.Elapsed < TimeSpan.FromSeconds(120) && !first.HasExited) Thread.Sleep(20);
            Assert.False(first.HasExited, $"the first writer ended early: {firstOut}");

            // A second real process on the same folder: exit 2, the holder named, nothing of the first run touched.
            var logBefore = File.ReadAllText(Path.Combine(busy, "log.txt"));
            using (var second = StartH2t(StageOneArgs(busy, 200)))
            {
                var secondOut = second.StandardOutput.ReadToEnd();
                second.WaitForExit();
                Assert.Equal(CliApp.UsageError, second.ExitCode);
                Assert.Contains($"run folder {Path.GetFullPath(busy)} is in use by process {first.Id} (started ",
                    secondOut.ReplaceLineEndings(""));
            }
            Assert.StartsWith(logBefore, File.ReadAllText(Path.Combine(busy, "log.txt")));

            // Every other writing command is refused on that folder too (here in-process, the first run is another
            // process).
            foreach (var args in new[]
            {
                new[] { "stage2", "--from", ckpt, "--rho", "0.5", "--epochs", "1", "--batch-size", "32", "--out",
                    busy },
                ["sweep", "--from", ckpt, "--rho", "0,0.5", "--epochs", "1", "--batch-size", "32", "--out", busy],
                // --data names nothing: the folder must be refused before any data is read or evaluated.
                ["tau-norm", "--from", ckpt, "--tau", "0,1", "--val-per-class", "2", "--data", "/no/such/data", "--out",
                    Path.Combine(busy, "tau.ckpt")],
                ["demo", "--data", set.Path, "--out", busy],
            })
            {
                (rc, output) = Run(args);
                Assert.True(rc == CliApp.UsageError, $"{args[0]}: {output}");
                Assert.Contains($"is in use by process {first.Id}", output.ReplaceLineEndings(""));
            }
            Assert.False(File.Exists(Path.Combine(busy, "tau.ckpt")));
        }
        finally
        {
            if (!first.HasExited) first.Kill(entireProcessTree: true); // SIGKILL: the kernel drops its lock
            first.WaitForExit();
        }
        // The kernel dropped the killed writer's lock: this process takes the folder (KilledRunResumes... resumes one).
        using (var hold = RunFolderLock.Acquire(busy))
            Assert.Contains($"process {Environment.ProcessId} ", File.ReadAllText(Path.Combine(busy,
                RunFolderLock.OwnerFileName)));
        Assert.False(File.Exists(Path.Combine(busy, RunFolderLock.OwnerFileName)));
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }
}
