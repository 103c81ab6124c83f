using System.Text.Json;
using H2T.Cli;
using H2T.Data;
using H2T.Models;
using H2T.Runs;
using H2T.Runtime;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Training;
using static TorchSharp.torch;

namespace H2T.Tests.Training;

/// <summary>Stage II from cached features (<see cref="FeatureCache"/>: pooled vectors or maps) against the exact
/// path.</summary>
public sealed class FeatureCacheTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    public FeatureCacheTests() => TorchRuntime.Initialize(2);

    RunFolder StageOne() => SweepTests.StageOne(set, runs.Path);

    static StageTwoConfig StageTwo(FeatureCacheMode cache, bool shiftBn) => new()
    {
        Epochs = 2, Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4, BatchSize: 32), ShiftBn = shiftBn,
        FeatureCache = cache, FeatureCacheStorage = "fp32", FeatureCacheViews = 3,
    };

    /// <summary>
    /// The identity the pooled cache rests on: H2T's mask is one bit per channel and global average pooling acts per
    /// channel, so pooling the fused map equals fusing the pooled vectors (bit for bit: each pooled channel comes from
    /// one map); feature mixup's blend is linear, so it commutes with pooling to float rounding. Both with the same
    /// draws, multi-expert channel groups included.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void PoolingTheFusedMapEqualsFusingThePooledVectors(int experts)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var tail = MemoryLayout.ToChannelsLast(randn(8, 12, 4, 4));
        var head = MemoryLayout.ToChannelsLast(randn(8, 12, 4, 4));
        var tailLabels = tensor(new long[] { 7, 8, 9, 7, 8, 9, 7, 8 });
        var headLabels = tensor(new long[] { 0, 0, 1, 2, 0, 1, 0, 0 });
        Tensor Pool(Tensor m) => m.mean([2L, 3L]);
        foreach (var method in new H2T.Fusion.IStageTwoMethod[] { new H2T.Fusion.HeadToTailFusion(0.25),
            new H2T.Fusion.FeatureMixup(0.4, mixLabels: true) })
        {
            var onMaps = method.Augment(tail, head, tailLabels, headLabels, new Random(17), experts);
            var onPooled = method.Augment(Pool(tail), Pool(head), tailLabels, headLabels, new Random(17), experts);
            var gap = (Pool(onMaps.Features) - onPooled.Features).abs().max().item<float>();
            if (method is H2T.Fusion.HeadToTailFusion) Assert.Equal(0f, gap);
            else Assert.True(gap < 1e-6, $"{method}: {gap}");
            Assert.True(method.CommutesWithPooling);
            Assert.Equal(onMaps.OtherWeight, onPooled.OtherWeight);
            // Not a vacuous check: the fusion moved the features away from the tail side's.
            Assert.True((Pool(tail) - onPooled.Features).abs().max().item<float>() > 1e-2, $"{method} changed nothing");
        }
    }

    static Dictionary<string, Tensor> State(string checkpoint) => SweepTests.State(checkpoint);

    /// <summary>Member by member: final test and validation accuracy, every epoch's loss, every weight and
    /// buffer.</summary>
    static void AssertSameMembers(SweepResult expected, SweepResult actual, string what)
    {
        foreach (var (e, c) in expected.Rows.Zip(actual.Rows))
        {
            Assert.Equal(e.FinalTest!.Top1, c.FinalTest!.Top1, 1e-9);
            Assert.Equal(e.FinalValidation?.Top1 ?? -1, c.FinalValidation?.Top1 ?? -1, 1e-9);
            var em = new RunFolder(e.RunFolder).ReadMetrics();
            var cm = new RunFolder(c.RunFolder).ReadMetrics();
            Assert.Equal(em.Epochs.Select(x => x.TrainLoss), cm.Epochs.Select(x => x.TrainLoss), (x,
                y) => Math.Abs(x - y) < 1e-5 * Math.Abs(x));
            var a = State(Path.Combine(e.RunFolder, "last.ckpt"));
            var b = State(Path.Combine(c.RunFolder, "last.ckpt"));
            foreach (var (key, t) in a)
                Assert.True(t.to_type(ScalarType.Float64).allclose(b[key].to_type(ScalarType.Float64), rtol: 1e-4,
                    atol: 1e-5), $"{what}, rho {e.Rho}: {key} differs");
        }
    }

    /// <summary>
    /// Without augmentation every view is the image itself, and without shift-BN the backbone is the same affine map
    /// on both paths: then the cached sweep must be the exact one, member by member (pairs, channel draws, steps,
    /// evaluation), to float tolerance.
    /// </summary>
    [Theory]
    [InlineData(FeatureCacheMode.Pooled)]
    [InlineData(FeatureCacheMode.Maps)]
    public void WhereTheViewsCoincideTheCachedSweepIsTheExactOne(FeatureCacheMode mode)
    {
        var s1 = StageOne();
        var splits = DatasetCatalog.Load(set.Config() with { ValidationPerClass = 2 }) with { TrainAugment =
            AugmentConfig.None };
        var exact = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(StageTwo(FeatureCacheMode.Off, shiftBn: false),
            [0, 0.5], 2), splits,
            Path.Combine(runs.Path, "exact"), CPU, SilentObserver.Instance);
        var cached = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(StageTwo(mode, shiftBn: false), [0, 0.5], 2),
            splits,
            Path.Combine(runs.Path, "cached"), CPU, SilentObserver.Instance);
        AssertSameMembers(exact, cached, mode.ToString());
        // The cache file lives beside the run only while it trains.
        Assert.Empty(Directory.GetFiles(Path.Combine(runs.Path, "cached"), "feature-cache-*"));
        var log = File.ReadAllText(Path.Combine(runs.Path, "cached", "rho0.5", "log.txt"));
        Assert.Contains(mode == FeatureCacheMode.Pooled ? "pooled features: 2 recorded epoch(s)" :
            "feature cache: 1 view(s)", log);
    }

    /// <summary>
    /// The pooled source records the exact path's epochs: with as many recorded epochs as epochs it is the exact path
    /// itself, with augmentation and shift-BN on (train-mode BatchNorm on each batch, the rho = 0 state carried apart):
    /// every member's losses, classifier, BatchNorm statistics and final test and validation accuracy. With fewer it
    /// replays them, and a resumed run replays what the uninterrupted one did.
    /// </summary>
    [Fact]
    public void PooledFeaturesRecordingEveryEpochAreTheExactPathWithShiftBnAndAugmentation()
    {
        var s1 = StageOne();
        var splits = DatasetCatalog.Load(set.Config() with { ValidationPerClass = 2 });
        Assert.True(splits.TrainAugment.Draws);
        var two = StageTwo(FeatureCacheMode.Off, shiftBn: true) with { Epochs = 3 };
        var exact = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(two, [0, 0.5], 2), splits,
            Path.Combine(runs.Path, "exact"), CPU, SilentObserver.Instance);
        var pooled = StageTwoSweep.Run(s1.LastCheckpoint,
            new SweepConfig(two with { FeatureCache = FeatureCacheMode.Pooled, FeatureCacheViews = 3 }, [0, 0.5], 2),
            splits, Path.Combine(runs.Path, "pooled"), CPU, SilentObserver.Instance);
        AssertSameMembers(exact, pooled, "pooled");
        // One recorded epoch replayed over three: interrupted after epoch 2 and resumed, it ends where the whole run
        // ends.
        var one = two with { FeatureCache = FeatureCacheMode.Pooled, FeatureCacheViews = 1 };
        var whole = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(one, [0, 0.5], 2), splits,
            Path.Combine(runs.Path, "one"), CPU, SilentObserver.Instance);
        var part = Path.Combine(runs.Path, "part");
        using (var cts = new CancellationTokenSource())
            Assert.ThrowsAny<OperationCanceledException>(() => StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(one,
                [0, 0.5], 2), splits, part, CPU,
                new TrainerTests.StopAtEpoch(2, cts), cancel: cts.Token));
        Assert.Equal(2, new RunFolder(Path.Combine(part, "rho0.5")).ReadMetrics().Epochs.Count);
        var resumed = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(one, [0, 0.5], 2), splits, part, CPU,
            SilentObserver.Instance, resume: true);
        AssertSameMembers(whole, resumed, "resumed");
    }

    /// <summary>
    /// With shift-BN the cache re-estimates BatchNorm once. A rho = 0 member's backbone keeps the statistics of one
    /// epoch of
    /// the class-balanced sampler: its first BatchNorm's running mean is the mean of the stem convolution's batch means
    /// over that epoch (with its augmentation). A fused member's keeps the mean of that and the same over the instance
    /// sampler's epoch (the two sides it was trained on). Both computed here independently from the stage-I weights.
    /// </summary>
    [Fact]
    public void TheMapCacheReestimatesBatchNormOnceOnEachSidesSampler()
    {
        var s1 = StageOne();
        var splits = DatasetCatalog.Load(set.Config());
        var config = StageTwo(FeatureCacheMode.Maps, shiftBn: true) with { Epochs = 1 };
        var sweep = Path.Combine(runs.Path, "bn");
        StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(config, [0, 0.5], 0), splits, sweep, CPU,
            SilentObserver.Instance);

        var stageOne = State(s1.LastCheckpoint);
        Tensor StemMean(string sampler, int stream, int augmentStream)
        {
            using var loader = new BatchLoader(splits.Train, Samplers.Create(sampler, splits.Train.Labels,
                Seeds.Derive(0, 0, stream), splits.Train.Count),
                32, splits.Norm, splits.TrainAugment, Seeds.Derive(0, 0, augmentStream), prefetch: 0);
            var means = new List<Tensor>();
            using (no_grad())
                foreach (var batch in loader.Epoch(0))
                {
                    using var b = batch;
                    means.Add(nn.functional.conv2d(b.Images, stageOne["backbone.conv1.weight"], padding: [1,
                        1]).mean([0, 2, 3]));
                }
            return stack(means).mean([0]);
        }
        var tail = StemMean("balanced", Seeds.TailSampler, Seeds.CacheBatchNorm);
        var head = StemMean("instance", Seeds.HeadSampler, Seeds.CacheBatchNormHead);
        foreach (var (folder, expected) in new[] { ("rho0", tail), ("rho0.5", (tail + head) / 2) })
        {
            var after = State(Path.Combine(sweep, folder, "last.ckpt"));
            float gap = (expected - after["backbone.bn1.running_mean"]).abs().max().item<float>();
            Assert.True(gap < 1e-4, $"{folder}: bn1 running mean differs by {gap}");
            // The weights are the stage-I ones: only the statistics and the classifier changed.
            Assert.Equal(0f,
                (stageOne["backbone.conv1.weight"] - after["backbone.conv1.weight"]).abs().max().item<float>());
            // Every class here has the same bright area, so the stem's means barely depend on the sampler; deeper ones
            // do.
            double moved = stageOne.Where(kv => kv.Key.EndsWith("running_mean", StringComparison.Ordinal))
                .Max(kv => (kv.Value - after[kv.Key]).abs().max().item<float>());
            Assert.True(moved > 1e-3, $"{folder}: the statistics did not move ({moved})");
        }
        Assert.Contains("re-estimated on the balanced sampler", File.ReadAllText(Path.Combine(sweep, "rho0",
            "log.txt")));
        Assert.Contains("the head side's under the instance sampler's", File.ReadAllText(Path.Combine(sweep, "rho0.5",
            "log.txt")));
    }

    [Theory]
    [InlineData(FeatureCacheMode.Pooled)]
    [InlineData(FeatureCacheMode.Maps)]
    [InlineData(FeatureCacheMode.Off)]
    public void ASweepLeavesNoTensorBehindAcrossEpochs(FeatureCacheMode mode)
    {
        var s1 = StageOne();
        var live = new List<long>();
        var config = StageTwo(mode, shiftBn: true) with { Epochs = 4, Prefetch = 0, FeatureCacheStorage = "bf16" };
        StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(config, [0, 0.5], 2), Path.Combine(runs.Path, "live"), CPU,
            new TrainerTests.LiveCounter(live), set.Path);
        Assert.Equal(4, live.Count);
        Assert.True(live.Skip(1).Distinct().Count() == 1, $"live tensors per epoch end: {string.Join(", ", live)}");
    }

    [Fact]
    public void TheCommandLineTrainsASweepFromTheCacheAndRecordsIt()
    {
        var s1 = Path.Combine(runs.Path, "cli-s1");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor",
            "10", "--epochs", "1",
            "--backbone", "resnet8", "--batch-size", "32", "--out", s1, "--threads", "2");
        Assert.True(rc == 0, output);
        var sweep = Path.Combine(runs.Path, "cli-sweep");
        (rc, output) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.5", "--epochs",
            "2", "--batch-size", "32",
            "--val-per-class", "2", "--feature-cache", "on", "--cache-views", "2", "--cache-storage", "bf16", "--out",
                sweep);
        Assert.True(rc == 0, output);
        Assert.Contains("feature cache (tail): 2 view(s) of", output);
        Assert.Contains("feature cache (head): 2 view(s) of", output);
        Assert.Contains("feature cache (eval): 100 test", output);
        Assert.Contains("bf16", output);
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(sweep, "rho0.5",
            "config.json"))).RootElement.GetProperty("config");
        Assert.Equal("maps", config.GetProperty("feature_cache").GetString()); // "on" keeps meaning the map cache
        Assert.Equal(2, config.GetProperty("feature_cache_views").GetInt32());
        Assert.True(new RunFolder(Path.Combine(sweep, "rho0.5")).ReadMetrics().Completed);
        // A resumed cached sweep rebuilds the same cache and finds nothing left to do.
        (rc, output) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.5", "--epochs",
            "2", "--batch-size", "32",
            "--val-per-class", "2", "--feature-cache", "on", "--cache-views", "2", "--cache-storage", "bf16", "--out",
                sweep, "--resume");
        Assert.True(rc == 0, output);
        // Bad values name their key.
        (rc, output) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--feature-cache", "on",
            "--cache-views", "-1", "--out", Path.Combine(runs.Path, "x"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("feature_cache_views must lie in [0, 256] (0: the source's default), got -1", output);
        (rc, output) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "feature_cache_storage=fp16",
            "--out", Path.Combine(runs.Path, "y"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("feature_cache_storage: expected auto, bf16, fp32, got 'fp16'", output);
    }

    /// <summary>
    /// Any stage-II option sweeps, alone or as a grid, from pooled features: every combination is a member with its own
    /// folder and config, the table names the options, and a member is the single run with its settings (same
    /// batches, same draws). Bad sweeps are named with exit 2: an H2T value out of range in a config file (at its
    /// line), an option the chosen method does not read, a shared setting, an unknown key.
    /// </summary>
    [Fact]
    public void TheCommandLineSweepsAnyStageTwoOptionFromPooledFeatures()
    {
        var ckpt = SweepTests.CliStageOne(set, Path.Combine(runs.Path, "opt-s1"));
        int rc;
        string output;
        string[] common = ["--epochs", "2", "--batch-size", "32", "--val-per-class", "2", "--feature-cache", "pooled",
            "--fusion", "feature-mixup"];
        var sweep = Path.Combine(runs.Path, "opt-sweep");
        (rc, output) = CliRunner.Run(["sweep", "--from", ckpt, .. common, "--rho", "0", "--sweep",
            "feature_mixup.alpha=0.2,0.4",
            "--sweep", "lr_scheduler.lr_factor=0.1,0.2", "--out", sweep]);
        Assert.True(rc == 0, output);
        Assert.Contains("(4 members)", output);
        var result = SweepResult.Read(sweep);
        Assert.Equal(["feature_mixup.alpha", "lr_scheduler.lr_factor"], result.SweptKeys);
        Assert.Equal(4, result.Rows.Count);
        Assert.NotNull(result.SelectedLabel);
        var md = File.ReadAllText(Path.Combine(sweep, "sweep.md"));
        Assert.Contains("| member |", md);
        Assert.Contains("feature_mixup.alpha=0.4, lr_scheduler.lr_factor=0.1", md);
        var member = Path.Combine(sweep, "feature_mixup.alpha=0.4+lr_scheduler.lr_factor=0.1");
        var recorded = JsonDocument.Parse(File.ReadAllText(Path.Combine(member,
            "config.json"))).RootElement.GetProperty("config");
        Assert.Equal(0.1, recorded.GetProperty("lr_factor").GetDouble());
        Assert.Equal("0.4", recorded.GetProperty("method_options").GetProperty("feature_mixup.alpha").GetString());
        Assert.Equal("pooled", recorded.GetProperty("feature_cache").GetString());
        Assert.Contains("pooled features: 1 recorded epoch(s) of the exact path's batches replayed over 2",
            File.ReadAllText(Path.Combine(member, "log.txt")));

        // The member is the single run with its settings.
        var single = Path.Combine(runs.Path, "opt-single");
        (rc, output) = CliRunner.Run(["stage2", "--from", ckpt, .. common, "--rho", "0", "feature_mixup.alpha=0.4",
            "--lr-factor", "0.1", "--out", single]);
        Assert.True(rc == 0, output);
        var a = State(Path.Combine(single, "last.ckpt"));
        var b = State(Path.Combine(member, "last.ckpt"));
        foreach (var (key, t) in a)
            Assert.True(t.to_type(ScalarType.Float64).allclose(b[key].to_type(ScalarType.Float64), rtol: 1e-4,
                atol: 1e-5), $"{key} differs");

        var cfg = Path.Combine(runs.Path, "c.yaml");
        File.WriteAllText(cfg, "H2T: 1.5\n");
        (rc, output) = CliRunner.Run("sweep", "--from", ckpt, "--config", cfg, "--rho", "0,0.1", "--out",
            Path.Combine(runs.Path, "bad1"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("c.yaml:1", output);
        Assert.Contains("rho must lie in [0, 1], got 1.5", output);
        (rc, output) = CliRunner.Run("sweep", "--from", ckpt, "--rho", "0,0.1", "--sweep",
            "feature_mixup.alpha=0.2,0.4", "--out", Path.Combine(runs.Path, "bad2"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("--sweep feature_mixup.alpha=0.2,0.4", output);
        Assert.Contains("feature_mixup.alpha", output);
        (rc, output) = CliRunner.Run("sweep", "--from", ckpt, "--rho", "0", "--sweep", "batch_size=32,64", "--out",
            Path.Combine(runs.Path, "bad3"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("batch_size cannot be swept", output);
        (rc, output) = CliRunner.Run("sweep", "--from", ckpt, "--sweep", "nope=1,2", "--out", Path.Combine(runs.Path,
            "bad4"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("'nope' is not a stage-II key", output);
        (rc, output) = CliRunner.Run("sweep", "--from", ckpt, "--sweep", "lr=0.1,fast", "--out", Path.Combine(runs.Path,
            "bad5"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("'fast'", output);
        Assert.False(Directory.Exists(Path.Combine(runs.Path, "bad5")));
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }
}
