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

/// <summary>Stage II from cached feature maps (<see cref="FeatureCache"/>) against the exact path.</summary>
public sealed class FeatureCacheTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    public FeatureCacheTests() => TorchRuntime.Initialize(2);

    RunFolder StageOne() => SweepTests.StageOne(set, runs.Path);

    static StageTwoConfig StageTwo(bool cache, bool shiftBn) => new()
    {
        Epochs = 2, Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4, BatchSize: 32), ShiftBn = shiftBn,
        FeatureCache = cache, FeatureCacheStorage = "fp32", FeatureCacheViews = 3,
    };

    static Dictionary<string, Tensor> State(string checkpoint) => SweepTests.State(checkpoint);

    /// <summary>
    /// Without augmentation every view is the image itself, and without shift-BN the backbone is the same affine map
    /// on both paths: then the cached sweep must be the exact one, member by member (pairs, channel draws, steps,
    /// evaluation), to float tolerance.
    /// </summary>
    [Fact]
    public void WhereTheViewsCoincideTheCachedSweepIsTheExactOne()
    {
        var s1 = StageOne();
        var splits = DatasetCatalog.Load(set.Config() with { ValidationPerClass = 2 }) with { TrainAugment = AugmentConfig.None };
        var exact = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(StageTwo(cache: false, shiftBn: false), [0, 0.5], 2), splits,
            Path.Combine(runs.Path, "exact"), CPU, SilentObserver.Instance);
        var cached = StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(StageTwo(cache: true, shiftBn: false), [0, 0.5], 2), splits,
            Path.Combine(runs.Path, "cached"), CPU, SilentObserver.Instance);
        foreach (var (e, c) in exact.Rows.Zip(cached.Rows))
        {
            Assert.Equal(e.FinalTest!.Top1, c.FinalTest!.Top1, 1e-9);
            Assert.Equal(e.FinalValidation!.Top1, c.FinalValidation!.Top1, 1e-9);
            var em = new RunFolder(e.RunFolder).ReadMetrics();
            var cm = new RunFolder(c.RunFolder).ReadMetrics();
            Assert.Equal(em.Epochs.Select(x => x.TrainLoss), cm.Epochs.Select(x => x.TrainLoss), (x, y) => Math.Abs(x - y) < 1e-5 * Math.Abs(x));
            var a = State(Path.Combine(e.RunFolder, "last.ckpt"));
            var b = State(Path.Combine(c.RunFolder, "last.ckpt"));
            foreach (var (key, t) in a)
                Assert.True(t.to_type(ScalarType.Float64).allclose(b[key].to_type(ScalarType.Float64), rtol: 1e-4, atol: 1e-5), $"rho {e.Rho}: {key} differs");
        }
        // The cache file lives beside the run only while it trains.
        Assert.Empty(Directory.GetFiles(Path.Combine(runs.Path, "cached"), "feature-cache-*"));
        Assert.Contains("feature cache: 1 view(s)", File.ReadAllText(Path.Combine(runs.Path, "cached", "rho0.5", "log.txt")));
    }

    /// <summary>
    /// With shift-BN the cache re-estimates BatchNorm once. A rho = 0 member's backbone keeps the statistics of one epoch of
    /// the class-balanced sampler: its first BatchNorm's running mean is the mean of the stem convolution's batch means
    /// over that epoch (with its augmentation). A fused member's keeps the mean of that and the same over the instance
    /// sampler's epoch (the two sides it was trained on). Both computed here independently from the stage-I weights.
    /// </summary>
    [Fact]
    public void ShiftBnReestimatesBatchNormOnceOnEachSidesSampler()
    {
        var s1 = StageOne();
        var splits = DatasetCatalog.Load(set.Config());
        var config = StageTwo(cache: true, shiftBn: true) with { Epochs = 1 };
        var sweep = Path.Combine(runs.Path, "bn");
        StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(config, [0, 0.5], 0), splits, sweep, CPU, SilentObserver.Instance);

        var stageOne = State(s1.LastCheckpoint);
        Tensor StemMean(string sampler, int stream, int augmentStream)
        {
            using var loader = new BatchLoader(splits.Train, Samplers.Create(sampler, splits.Train.Labels, Seeds.Derive(0, 0, stream), splits.Train.Count),
                32, splits.Norm, splits.TrainAugment, Seeds.Derive(0, 0, augmentStream), prefetch: 0);
            var means = new List<Tensor>();
            using (no_grad())
                foreach (var batch in loader.Epoch(0))
                {
                    using var b = batch;
                    means.Add(nn.functional.conv2d(b.Images, stageOne["backbone.conv1.weight"], padding: [1, 1]).mean([0, 2, 3]));
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
            Assert.Equal(0f, (stageOne["backbone.conv1.weight"] - after["backbone.conv1.weight"]).abs().max().item<float>());
            // Every class here has the same bright area, so the stem's means barely depend on the sampler; deeper ones do.
            double moved = stageOne.Where(kv => kv.Key.EndsWith("running_mean", StringComparison.Ordinal))
                .Max(kv => (kv.Value - after[kv.Key]).abs().max().item<float>());
            Assert.True(moved > 1e-3, $"{folder}: the statistics did not move ({moved})");
        }
        Assert.Contains("re-estimated on one balanced epoch", File.ReadAllText(Path.Combine(sweep, "rho0", "log.txt")));
        Assert.Contains("the head side's under the instance sampler's", File.ReadAllText(Path.Combine(sweep, "rho0.5", "log.txt")));
    }

    [Fact]
    public void ACachedSweepLeavesNoTensorBehindAcrossEpochs()
    {
        var s1 = StageOne();
        var live = new List<long>();
        var config = StageTwo(cache: true, shiftBn: true) with { Epochs = 4, Prefetch = 0, FeatureCacheStorage = "bf16" };
        StageTwoSweep.Run(s1.LastCheckpoint, new SweepConfig(config, [0, 0.5], 2), Path.Combine(runs.Path, "live"), CPU,
            new TrainerTests.LiveCounter(live), set.Path);
        Assert.Equal(4, live.Count);
        Assert.True(live.Skip(1).Distinct().Count() == 1, $"live tensors per epoch end: {string.Join(", ", live)}");
    }

    [Fact]
    public void TheCommandLineTrainsASweepFromTheCacheAndRecordsIt()
    {
        var s1 = Path.Combine(runs.Path, "cli-s1");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor", "10", "--epochs", "1",
            "--backbone", "resnet8", "--batch-size", "32", "--out", s1, "--threads", "2");
        Assert.True(rc == 0, output);
        var sweep = Path.Combine(runs.Path, "cli-sweep");
        (rc, output) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.5", "--epochs", "2", "--batch-size", "32",
            "--val-per-class", "2", "--feature-cache", "on", "--cache-views", "2", "--cache-storage", "bf16", "--out", sweep);
        Assert.True(rc == 0, output);
        Assert.Contains("feature cache (tail): 2 view(s) of", output);
        Assert.Contains("feature cache (head): 2 view(s) of", output);
        Assert.Contains("feature cache (eval): 100 test", output);
        Assert.Contains("bf16", output);
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(sweep, "rho0.5", "config.json"))).RootElement.GetProperty("config");
        Assert.True(config.GetProperty("feature_cache").GetBoolean());
        Assert.Equal(2, config.GetProperty("feature_cache_views").GetInt32());
        Assert.True(new RunFolder(Path.Combine(sweep, "rho0.5")).ReadMetrics().Completed);
        // A resumed cached sweep rebuilds the same cache and finds nothing left to do.
        (rc, output) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.5", "--epochs", "2", "--batch-size", "32",
            "--val-per-class", "2", "--feature-cache", "on", "--cache-views", "2", "--cache-storage", "bf16", "--out", sweep, "--resume");
        Assert.True(rc == 0, output);
        // Bad values name their key.
        (rc, output) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--feature-cache", "on", "--cache-views", "0", "--out", Path.Combine(runs.Path, "x"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("feature_cache_views must lie in [1, 256], got 0", output);
        (rc, output) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "feature_cache_storage=fp16", "--out", Path.Combine(runs.Path, "y"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("feature_cache_storage: expected auto, bf16, fp32, got 'fp16'", output);
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }
}
