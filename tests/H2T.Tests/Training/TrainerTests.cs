using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Tests.Data;
using H2T.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Tests.Training;

public sealed class TrainerTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    public TrainerTests() => TorchRuntime.Initialize(2);

    StageOneConfig StageOne(int epochs = 2, double mixup = 1.0, int prefetch = 2) => new()
    {
        Data = set.Config(),
        Backbone = "resnet20",
        Epochs = epochs,
        Optim = new OptimConfig(Lr: 0.05, BatchSize: 32),
        MixupAlpha = mixup,
        Prefetch = prefetch,
    };

    static StageTwoConfig StageTwo(double rho, bool shiftBn = true, int epochs = 2) => new()
    {
        Epochs = epochs, Rho = rho, ShiftBn = shiftBn, Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4,
            BatchSize: 32),
    };

    static Dictionary<string, Tensor> Weights(string checkpoint)
    {
        var meta = Checkpoint.ReadMeta(checkpoint);
        var backbone = ModelFactory.CreateBackbone(meta.Architecture, meta.InChannels);
        var head = ModelFactory.CreateHead(meta.Classifier, backbone.FeatureChannels, meta.NumClasses);
        Checkpoint.Load(checkpoint, backbone, head, null);
        return backbone.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
    }

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void StageOneLearnsAndWritesMetricsAndCheckpoints()
    {
        var run = new RunFolder(Path.Combine(runs.Path, "s1"));
        // 8 epochs: test accuracy swings between 16% and 50% while lr is high (BatchNorm's running statistics trail
        // weights that move fast on 10 batches per epoch), in either layout (epoch 6 of 6 gave 59% in NCHW, 18% in
        // channels-last); the cosine tail settles it: 56-62% at 8 to 12 epochs in both.
        var metrics = StageOneTrainer.Run(StageOne(epochs: 8, mixup: 0) with { Data = set.Config(imbFactor: 2),
            Optim = new OptimConfig(Lr: 0.1, BatchSize: 32) }, run, CPU, SilentObserver.Instance);
        Assert.True(metrics.Completed);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], metrics.Epochs.Select(e => e.Epoch));
        Assert.True(metrics.Final!.Top1 > 40,
            $"a separable toy set must be learnt beyond chance (10%), got {metrics.Final.Top1:F1}");
        Assert.True(File.Exists(run.LastCheckpoint) && File.Exists(run.BestCheckpoint) &&
            File.Exists(run.FinalEvalFile));
        var meta = Checkpoint.ReadMeta(run.LastCheckpoint);
        Assert.Equal(("stage1", 7, "resnet20", 1, 10), (meta.Stage, meta.Epoch, meta.Architecture, meta.InChannels,
            meta.NumClasses));
        Assert.Equal(LongTail.Counts(40, 10, 2, ImbalanceType.Exp), meta.ClassCounts);
        Assert.Empty(Directory.GetFiles(run.Path, "*.tmp"));
        // The layout changes float rounding, so the run says which one it used.
        Assert.Contains("feature maps channels-last", File.ReadAllText(run.LogFile));
        Assert.Equal("channels-last", meta.Layout);
    }

    [Fact]
    public void TheMemoryLayoutIsARunSettingRecordedInTheCheckpointAndRestoredFromIt()
    {
        var run = new RunFolder(Path.Combine(runs.Path, "nchw"));
        StageOneTrainer.Run(StageOne(epochs: 1) with { Layout = FeatureLayout.Nchw }, run, CPU,
            SilentObserver.Instance);
        Assert.Contains("feature maps NCHW", File.ReadAllText(run.LogFile));
        Assert.Equal("NCHW", Checkpoint.ReadMeta(run.LastCheckpoint).Layout);
        using var models = Checkpoint.Open(run.LastCheckpoint);
        Assert.False(models.Backbone.ChannelsLast);
        // Stage II takes the layout from its own config, not from stage I or from process state.
        var s2 = new RunFolder(Path.Combine(runs.Path, "nchw-s2"));
        StageTwoTrainer.Run(run.LastCheckpoint, new StageTwoConfig { Epochs = 1,
            Optim = new OptimConfig(BatchSize: 16) }, s2, CPU, SilentObserver.Instance);
        Assert.Equal("channels-last", Checkpoint.ReadMeta(s2.LastCheckpoint).Layout);
    }

    [Fact]
    public void StageTwoFreezesTheBackboneAndShiftsOnlyBatchNormStatistics()
    {
        var s1 = new RunFolder(Path.Combine(runs.Path, "s1"));
        StageOneTrainer.Run(StageOne(), s1, CPU, SilentObserver.Instance);
        var before = Weights(s1.LastCheckpoint);

        foreach (var shift in new[] { true, false })
        {
            var s2 = new RunFolder(Path.Combine(runs.Path, $"s2-{shift}"));
            var m = StageTwoTrainer.Run(s1.LastCheckpoint, StageTwo(0.5, shift), s2, CPU, SilentObserver.Instance);
            Assert.True(m.Completed);
            var after = Weights(s2.LastCheckpoint);
            foreach (var (key, w) in before)
            {
                bool bnStat = key.EndsWith("running_mean", StringComparison.Ordinal) || key.EndsWith("running_var",
                    StringComparison.Ordinal) || key.EndsWith("num_batches_tracked", StringComparison.Ordinal);
                bool same = Same(w, after[key]);
                if (!bnStat) Assert.True(same, $"backbone weight {key} changed in stage II");
                else if (!shift) Assert.True(same, $"{key} changed although shift-BN is off");
            }
            if (shift) Assert.Contains(before.Keys, k => k.EndsWith("running_mean",
                StringComparison.Ordinal) && !Same(before[k], after[k]));
        }
    }

    [Theory]
    [InlineData(ComputePrecision.Fp32)]
    [InlineData(ComputePrecision.Bf16)]
    public void SameSeedSameRunAndResumeReplaysTheUninterruptedRun(ComputePrecision precision)
    {
        var a = new RunFolder(Path.Combine(runs.Path, "a"));
        var b = new RunFolder(Path.Combine(runs.Path, "b"));
        var config = StageOne(epochs: 2) with { Precision = precision };
        var full = StageOneTrainer.Run(config, a, CPU, SilentObserver.Instance);
        // b: stop after the first epoch (cancel at the start of epoch 2), then resume.
        using var cts = new CancellationTokenSource();
        var stopper = new StopAtEpoch(1, cts);
        Assert.ThrowsAny<OperationCanceledException>(() => StageOneTrainer.Run(config, b, CPU, stopper,
            cancel: cts.Token));
        Assert.Single(b.ReadMetrics().Epochs);
        var resumed = StageOneTrainer.Run(config, b, CPU, SilentObserver.Instance, resume: true);
        Assert.Equal(MixedPrecision.Name(precision), Checkpoint.ReadMeta(b.LastCheckpoint).Precision);
        Assert.Equal(full.Epochs.Select(e => e.TrainLoss), resumed.Epochs.Select(e => e.TrainLoss));
        Assert.Equal(full.Final!.Top1, resumed.Final!.Top1);
        var wa = Weights(a.LastCheckpoint);
        var wb = Weights(b.LastCheckpoint);
        Assert.All(wa, kv => Assert.True(kv.Value.allclose(wb[kv.Key], rtol: 1e-4, atol: 1e-6), kv.Key));
    }

    [Fact]
    public void ResumeRefusesAnotherConfigAndFinishesAFinishedRun()
    {
        var run = new RunFolder(Path.Combine(runs.Path, "r"));
        StageOneTrainer.Run(StageOne(epochs: 1), run, CPU, SilentObserver.Instance);
        var e = Assert.Throws<ConfigException>(() => StageOneTrainer.Run(StageOne(epochs: 1) with { MixupAlpha = 0 },
            run, CPU, SilentObserver.Instance, resume: true));
        Assert.Contains("another config", e.Message);
        var again = StageOneTrainer.Run(StageOne(epochs: 1), run, CPU, SilentObserver.Instance, resume: true);
        Assert.True(again.Completed);
        Assert.Single(again.Epochs);

        // Stage II starts only from stage I.
        var s2 = new RunFolder(Path.Combine(runs.Path, "r2"));
        StageTwoTrainer.Run(run.LastCheckpoint, StageTwo(0.25, epochs: 1), s2, CPU, SilentObserver.Instance);
        var e2 = Assert.Throws<ConfigException>(() => StageTwoTrainer.Run(s2.LastCheckpoint, StageTwo(0.25, epochs: 1),
            new RunFolder(Path.Combine(runs.Path, "r3")), CPU, SilentObserver.Instance));
        Assert.Contains("stage-I checkpoint", e2.Message);
    }

    [Fact]
    public void EvaluationCanBeLimitedToTheLastEpoch()
    {
        var run = new RunFolder(Path.Combine(runs.Path, "sparse"));
        var m = StageOneTrainer.Run(StageOne(epochs: 3) with { EvalEvery = 0 }, run, CPU, SilentObserver.Instance);
        Assert.Equal([false, false, true], m.Epochs.Select(e => e.Test is not null));
        Assert.NotNull(m.Final);
        Assert.Equal(2, m.BestOnTestEpoch);
        Assert.True(File.Exists(run.FinalEvalFile));
    }

    [Theory]
    [InlineData(ComputePrecision.Fp32)]
    [InlineData(ComputePrecision.Bf16)]
    public void NoTensorLeaksAcrossEpochs(ComputePrecision precision)
    {
        var live = new List<long>();
        var run = new RunFolder(Path.Combine(runs.Path, "leak"));
        StageOneTrainer.Run(StageOne(epochs: 4, prefetch: 0) with { Precision = precision }, run, CPU,
            new LiveCounter(live));
        // After the first epoch everything a step makes is disposed: the live count must stay flat.
        Assert.Equal(4, live.Count);
        Assert.True(live.Skip(1).Distinct().Count() == 1, $"live tensors per epoch end: {string.Join(", ", live)}");

        var live2 = new List<long>();
        var s2 = new RunFolder(Path.Combine(runs.Path, "leak2"));
        StageTwoTrainer.Run(run.LastCheckpoint, StageTwo(0.5, epochs: 3) with { Prefetch = 0, Precision = precision },
            s2, CPU, new LiveCounter(live2));
        Assert.True(live2.Skip(1).Distinct().Count() == 1,
            $"stage II live tensors per epoch end: {string.Join(", ", live2)}");
    }

    [Fact]
    public void BadSettingsAndMismatchedCheckpointsAreClearErrors()
    {
        Assert.Contains("epochs",
            Assert.Throws<ConfigException>(() => (StageOne() with { Epochs = 0 }).Validate()).Message);
        Assert.Contains("lr",
            Assert.Throws<ConfigException>(() => (StageOne() with { Optim =
            new OptimConfig(Lr: -1) }).Validate()).Message);
        Assert.Contains("unknown loss",
            Assert.Throws<ConfigException>(() => (StageOne() with { Loss =
            new LossConfig("nope") }).Validate()).Message);

        var run = new RunFolder(Path.Combine(runs.Path, "s1"));
        StageOneTrainer.Run(StageOne(epochs: 1), run, CPU, SilentObserver.Instance);
        using var wrongArch = new ResNetCifar(32, 1);
        Assert.Contains("resnet20", Assert.Throws<ConfigException>(() => Checkpoint.Load(run.LastCheckpoint, wrongArch,
            null, null)).Message);
        using var rightArch = new ResNetCifar(20, 1);
        Assert.Contains("10 classes", Assert.Throws<ConfigException>(() => Checkpoint.Load(run.LastCheckpoint,
            rightArch, null, null, 1, 7)).Message);
        var junk = Path.Combine(runs.Path, "junk.ckpt");
        File.WriteAllBytes(junk, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        Assert.Contains("not an H2T.NET checkpoint",
            Assert.Throws<ConfigException>(() => Checkpoint.ReadMeta(junk)).Message);
        var truncated = Path.Combine(runs.Path, "truncated.ckpt");
        var bytes = File.ReadAllBytes(run.LastCheckpoint);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        Assert.Throws<ConfigException>(() => Checkpoint.Load(truncated, rightArch, new LinearHead(64, 10), null));
    }

    [Fact]
    public void BrokenCheckpointFilesSayWhatIsWrongWithThem()
    {
        var run = new RunFolder(Path.Combine(runs.Path, "s1"));
        StageOneTrainer.Run(StageOne(epochs: 1), run, CPU, SilentObserver.Instance);
        var good = File.ReadAllBytes(run.LastCheckpoint);
        string Write(string name, byte[] bytes)
        {
            var path = Path.Combine(runs.Path, name);
            File.WriteAllBytes(path, bytes);
            return path;
        }
        string MetaError(string name,
            byte[] bytes) => Assert.Throws<ConfigException>(() => Checkpoint.ReadMeta(Write(name, bytes))).Message;

        // Truncated in the tensor data: both byte counts, found before any tensor is parsed.
        var half = good[..(good.Length / 2)];
        var m = System.Text.RegularExpressions.Regex.Match(MetaError("half.ckpt", half),
            @"truncated: (\d+) bytes of tensor data expected after the header, (\d+) found");
        Assert.True(m.Success);
        Assert.Equal(good.Length - half.Length, long.Parse(m.Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture) - long.Parse(m.Groups[2].Value,
            System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains("truncated: the file ends at byte 20, inside the checkpoint header", MetaError("head.ckpt",
            good[..20]));
        Assert.Contains("5 unexpected byte(s) after the", MetaError("long.ckpt", [.. good, 1, 2, 3, 4, 5]));
        Assert.Contains("shorter than the 8-byte magic", MetaError("empty.ckpt", []));
        Assert.Contains("expected magic 'H2TCKPT2' at offset 0", MetaError("junk.ckpt",
            "hello world, not a checkpoint"u8.ToArray()));
        Assert.Contains("h2t import", MetaError("zip.ckpt", [(byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0, 0, 0]));
        var newer = good.ToArray();
        newer[7] = (byte)'9';
        Assert.Contains("checkpoint format '9' is not one this build reads (formats 1 to 2)", MetaError("newer.ckpt",
            newer));
        var corrupt = good.ToArray();
        for (int i = 20; i < 40; i++) corrupt[i] = (byte)'#';
        Assert.Contains("corrupt checkpoint header", MetaError("corrupt.ckpt", corrupt));

        // Format 1 (no length field) still loads, and a truncated one says so when its tensors run out.
        byte[] v1 = [.. "H2TCKPT1"u8.ToArray(), .. good[16..]];
        using var backbone = new ResNetCifar(20, 1);
        using var head = new LinearHead(64, 10);
        Assert.Equal(0, Checkpoint.Load(Write("v1.ckpt", v1), backbone, head, null).Epoch);
        var e = Assert.Throws<ConfigException>(() => Checkpoint.Load(Write("v1-half.ckpt", v1[..(v1.Length / 2)]),
            backbone, head, null));
        Assert.Contains($"truncated: the tensor data ends at byte {v1.Length / 2}", e.Message);

        // The CLI: one line, exit code 2.
        var (rc, output) = H2T.Tests.Cli.CliRunner.Run("eval", "--checkpoint", Path.Combine(runs.Path, "half.ckpt"));
        Assert.Equal(H2T.Cli.CliApp.UsageError, rc);
        Assert.Contains("bytes of tensor data expected", output.ReplaceLineEndings(""));
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }

    internal sealed class StopAtEpoch(int epoch, CancellationTokenSource cts) : ITrainingObserver
    {
        public void EpochStarted(string stage, int e, int totalEpochs, int batches) { if (e == epoch) cts.Cancel(); }
        public void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochRecord record) { }
        public void Message(string text) { }
    }

    internal sealed class LiveCounter(List<long> live) : ITrainingObserver
    {
        public void EpochStarted(string stage, int epoch, int totalEpochs, int batches) { }
        public void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond) { }
        public void EpochCompleted(EpochRecord record) => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        public void Message(string text) { }
    }
}
