using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Training;
using static TorchSharp.torch;

namespace H2T.Tests.Training;

public sealed class SweepTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    public SweepTests() => TorchRuntime.Initialize(2);

    RunFolder StageOne() => StageOne(set, runs.Path);

    /// <summary>A 1-epoch stage-I run on the tiny set, the start of every sweep here and of the feature-cache
    /// tests.</summary>
    /// <summary>The same start through the command line (a 1-epoch ResNet-8 in <paramref name="dir"/>); its
    /// last.ckpt.</summary>
    internal static string CliStageOne(TinyLongTailedSet set, string dir)
    {
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor",
            "10", "--epochs", "1",
            "--backbone", "resnet8", "--batch-size", "32", "--out", dir, "--threads", "2");
        Assert.True(rc == 0, output);
        return Path.Combine(dir, "last.ckpt");
    }

    internal static RunFolder StageOne(TinyLongTailedSet set, string dir)
    {
        var s1 = new RunFolder(Path.Combine(dir, "s1"));
        StageOneTrainer.Run(new StageOneConfig
        {
            Data = set.Config(), Backbone = "resnet20", Epochs = 1, Optim = new OptimConfig(Lr: 0.05, BatchSize: 32),
                MixupAlpha = 0,
        }, s1, CPU, SilentObserver.Instance);
        return s1;
    }

    static StageTwoConfig StageTwo(int epochs = 2, int prefetch = 2) =>
        new() { Epochs = epochs, Prefetch = prefetch, Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4,
            BatchSize: 32) };

    /// <summary>Checkpoints equal to float tolerance, key by key.</summary>
    static void AssertSameState(string a, string b, string what)
    {
        var x = State(a);
        var y = State(b);
        Assert.Equal(x.Keys.Order(), y.Keys.Order());
        foreach (var (key, t) in x)
            Assert.True(t.to_type(ScalarType.Float64).allclose(y[key].to_type(ScalarType.Float64), rtol: 1e-4,
                atol: 1e-5), $"{what}: {key} differs");
    }

    /// <summary>A checkpoint's backbone and head state by name.</summary>
    internal static Dictionary<string, Tensor> State(string checkpoint)
    {
        var meta = Checkpoint.ReadMeta(checkpoint);
        using var backbone = ModelFactory.CreateBackbone(meta.Architecture, meta.InChannels);
        using var head = ModelFactory.CreateHead(meta.Classifier, backbone, meta.NumClasses);
        Checkpoint.Load(checkpoint, backbone, head, null);
        return backbone.state_dict().Select(kv => ("backbone." + kv.Key, kv.Value))
            .Concat(head.state_dict().Select(kv => ("head." + kv.Key, kv.Value)))
            .ToDictionary(kv => kv.Item1, kv => kv.Item2.clone());
    }

    [Fact]
    public void EachSweepMemberMatchesTheSingleRunWithTheSameBatchesAndDraws()
    {
        var s1 = StageOne();
        // The validation split holds 3 images of the head class out of training: stage I saw them, stage II must not.
        var splits = DatasetCatalog.Load(set.Config() with { ValidationPerClass = 3 });
        var stageTwo = StageTwo();
        var rhos = new[] { 0.5, 0, 0.25 };
        var sweepDir = Path.Combine(runs.Path, "sweep");
        var result = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(stageTwo, rhos, 3), splits, sweepDir, CPU,
            SilentObserver.Instance);

        Assert.Equal([0, 0.25, 0.5], result.Rows.Select(r => r.Rho));
        Assert.Contains("held out of training", result.ValidationNote);
        Assert.Contains("stage I trained on the 3", result.ValidationNote);
        Assert.NotNull(result.SelectedRho);
        Assert.True(File.Exists(result.SelectedCheckpoint));
        Assert.True(File.Exists(Path.Combine(sweepDir, "sweep.json")));
        foreach (var rho in rhos)
        {
            var single = new RunFolder(Path.Combine(runs.Path, $"single-{rho}"));
            var m = StageTwoTrainer.Run(s1.LastCheckpoint, stageTwo with { Rho = rho }, splits, single, CPU,
                SilentObserver.Instance);
            var member = new RunFolder(Path.Combine(sweepDir, SweepConfig.FolderName(rho)));
            AssertSameState(single.LastCheckpoint, member.LastCheckpoint, $"rho {rho}, sweep against single run");
            var sm = member.ReadMetrics();
            Assert.Equal(m.Epochs.Select(e => e.TrainLoss), sm.Epochs.Select(e => e.TrainLoss), (x,
                y) => Math.Abs(x - y) < 1e-4);
            Assert.Equal(m.Final!.Top1, sm.Final!.Top1, 1e-6);
            Assert.NotNull(sm.FinalValidation);
        }
    }

    [Fact]
    public void SweepResumesAfterAnInterruptionToTheUninterruptedResult()
    {
        var s1 = StageOne();
        var stageTwo = StageTwo();
        var config = new SweepConfig(stageTwo, [0, 0.5], 2);
        var full = StageTwoSweep.Run(s1.LastCheckpoint, config, Path.Combine(runs.Path, "a"), CPU,
            SilentObserver.Instance, set.Path);
        using var cts = new CancellationTokenSource();
        var dir = Path.Combine(runs.Path, "b");
        Assert.ThrowsAny<OperationCanceledException>(() =>
            StageTwoSweep.Run(s1.LastCheckpoint, config, dir, CPU, new TrainerTests.StopAtEpoch(1, cts), set.Path,
                cancel: cts.Token));
        var resumed = StageTwoSweep.Run(s1.LastCheckpoint, config, dir, CPU, SilentObserver.Instance, set.Path,
            resume: true);
        Assert.Equal(full.Rows.Select(r => r.FinalTest!.Top1), resumed.Rows.Select(r => r.FinalTest!.Top1));
        Assert.Equal(full.SelectedRho, resumed.SelectedRho);
        foreach (var rho in new[] { 0.0, 0.5 })
        {
            AssertSameState(Path.Combine(runs.Path, "a", SweepConfig.FolderName(rho), "last.ckpt"),
                Path.Combine(dir, SweepConfig.FolderName(rho), "last.ckpt"),
                    $"rho {rho}, resumed against uninterrupted");
        }
    }

    [Fact]
    public void SweepLeavesNoTensorBehindAcrossEpochs()
    {
        var s1 = StageOne();
        var stageTwo = StageTwo(epochs: 4, prefetch: 0);
        var live = new List<long>();
        StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(stageTwo, [0, 0.5], 2), Path.Combine(runs.Path, "live"),
            CPU,
            new TrainerTests.LiveCounter(live), set.Path);
        Assert.Equal(4, live.Count);
        Assert.True(live.Skip(1).Distinct().Count() == 1, $"live tensors per epoch end: {string.Join(", ", live)}");
    }

    [Theory]
    [InlineData("0:1:0.1", new[] { 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 })]
    [InlineData("0,0.25, 0.5", new[] { 0, 0.25, 0.5 })]
    [InlineData("0.3", new[] { 0.3 })]
    public void RhoSpecsParse(string spec, double[] expected) => Assert.Equal(expected, SweepConfig.ParseRhos(spec));

    [Theory]
    [InlineData("0:x:0.1", "'x' is not a number")]
    [InlineData("1:0:0.1", "start <= stop")]
    [InlineData("0:1", "start:stop:step")]
    public void BadRhoSpecsNameTheProblem(string spec, string message) =>
        Assert.Contains(message, Assert.Throws<ConfigException>(() => SweepConfig.ParseRhos(spec)).Message);

    [Fact]
    public void SweepRejectsRhoOutsideTheUnitIntervalAndRepeats()
    {
        var c = new StageTwoConfig();
        Assert.Contains("rho must lie in [0, 1]", Assert.Throws<ConfigException>(() => new SweepConfig(c, [0,
            1.5]).Validate()).Message);
        Assert.Contains("repeat", Assert.Throws<ConfigException>(() => new SweepConfig(c, [0.5,
            0.5]).Validate()).Message);
    }

    public void Dispose()
    {
        set.Dispose();
        runs.Dispose();
    }
}

public sealed class ValidationSplitTests
{
    [Fact]
    public void ValidationComesFromUnusedImagesAndHoldsOutOnlyWhereNoneAreLeft()
    {
        // 3 classes x 10 images; the long-tail cut keeps 10 / 4 / 1.
        var labels = Enumerable.Range(0, 30).Select(i => i / 10).ToArray();
        var counts = new[] { 10, 4, 1 };
        var selected = LongTail.SelectIndices(labels, counts, 0);
        var split = ValidationSplit.Build(labels, selected, 3, perClass: 3, seed: 0);

        Assert.Equal(9, split.Validation.Length);
        Assert.Equal([3, 3, 3], split.Validation.GroupBy(i => labels[i]).OrderBy(g => g.Key).Select(g => g.Count()));
        Assert.Empty(split.Validation.Intersect(split.Train));
        Assert.Equal([3, 0, 0], split.HeldOutFromTraining);
        Assert.Equal([0, 3, 3], split.FromUnused);
        // Classes 1 and 2 keep every training image; class 0 loses exactly the held-out three.
        Assert.Equal(selected.Where(i => labels[i] > 0), split.Train.Where(i => labels[i] > 0));
        Assert.Equal(7, split.Train.Count(i => labels[i] == 0));
        Assert.Equal(split.Validation, ValidationSplit.Build(labels, selected, 3, 3, 0).Validation);
        Assert.NotEqual(split.Validation, ValidationSplit.Build(labels, selected, 3, 3, 1).Validation);
    }

    [Fact]
    public void AClassNeverLosesMoreThanHalfItsTrainingImages()
    {
        var labels = Enumerable.Range(0, 4).Select(_ => 0).ToArray();
        var split = ValidationSplit.Build(labels, [0, 1, 2, 3], 1, perClass: 10, seed: 0);
        Assert.Equal(2, split.Validation.Length);
        Assert.Equal(2, split.Train.Length);
    }
}
