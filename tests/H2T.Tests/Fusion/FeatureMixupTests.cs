using System.Text.Json;
using H2T.Cli;
using H2T.Fusion;
using H2T.Runs;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;
using static TorchSharp.torch;

namespace H2T.Tests.Fusion;

/// <summary>Feature-level Balanced-MixUp, the method added through the stage-II seam: the op, its options, and a
/// stage-II run that trains with it from the command line.</summary>
public sealed class FeatureMixupTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    [Fact]
    public void TheMapIsTheHeadShareOfTheHeadMapPlusTheRestOfTheTailMapAndTheTargetIsMixedAlike()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var tail = randn(4, 6, 2, 2);
        var head = randn(4, 6, 2, 2);
        var tailLabels = tensor(new long[] { 7, 8, 9, 7 });
        var headLabels = tensor(new long[] { 0, 0, 1, 2 });
        var method = new FeatureMixup(alpha: 0.5, mixLabels: true);
        double lam = method.DrawHeadShare(new Random(11));
        var batch = method.Augment(tail, head, tailLabels, headLabels, new Random(11), experts: 1);
        Assert.True(batch.Features.allclose(head * lam + tail * (1 - lam), rtol: 0, atol: 1e-6));
        Assert.Equal(lam, batch.OtherWeight);
        Assert.True(batch.OtherLabels!.eq(headLabels).all().item<bool>());
        // mix_labels off: the tail label is kept, as H2T keeps it.
        var kept = new FeatureMixup(0.5, mixLabels: false).Augment(tail, head, tailLabels, headLabels, new Random(11),
            1);
        Assert.Null(kept.OtherLabels);
        Assert.True(kept.Features.allclose(batch.Features));
        Assert.Throws<ArgumentException>(() => method.Augment(tail, randn(3, 6, 2, 2), tailLabels, headLabels,
            new Random(0), 1));
    }

    [Fact]
    public void TheHeadShareIsBetaAlphaOne()
    {
        // Beta(alpha, 1) has mean alpha / (alpha + 1): 1/6 for alpha 0.2, mostly class-balanced batches.
        var method = new FeatureMixup(0.2, true);
        var rng = new Random(5);
        var draws = Enumerable.Range(0, 20000).Select(_ => method.DrawHeadShare(rng)).ToArray();
        Assert.InRange(draws.Average(), 1 / 6.0 - 0.01, 1 / 6.0 + 0.01);
        Assert.All(draws, d => Assert.InRange(d, 0, 1));
        // P(lam <= 0.5) = 0.5^alpha.
        Assert.InRange(draws.Count(d => d <= 0.5) / 20000.0, Math.Pow(0.5, 0.2) - 0.01, Math.Pow(0.5, 0.2) + 0.01);
    }

    [Fact]
    public void ItsOptionsAreCheckedWithTheKeyAndBelongToTheMethodChosen()
    {
        Assert.Equal(0.2, FeatureMixup.From(null).Alpha);
        Assert.True(FeatureMixup.From(null).MixLabels);
        var m = FeatureMixup.From(new Dictionary<string, string> { ["feature_mixup.alpha"] = "0.4",
            ["feature_mixup.mix_labels"] = "off" });
        Assert.Equal((0.4, false), (m.Alpha, m.MixLabels));
        var e = Assert.Throws<ConfigException>(() => FeatureMixup.From(new Dictionary<string,
            string> { ["feature_mixup.alpha"] = "0" }));
        Assert.Equal("feature_mixup.alpha", e.Key);
        // Another method's option is refused, naming what the chosen methods take.
        var wrong = new StageTwoConfig { MethodOptions = new Dictionary<string,
            string> { ["feature_mixup.alpha"] = "0.4" } };
        Assert.Contains("feature_mixup.alpha is an option of another method; fusion 'h2t'",
            Assert.Throws<ConfigException>(() => StageTwoMethods.Check(wrong)).Message);
        Assert.Contains("unknown fusion 'cutmix'",
            Assert.Throws<ConfigException>(() => StageTwoMethods.Check(new StageTwoConfig { Fusion =
            "cutmix" })).Message);
    }

    [Fact]
    public void StageTwoTrainsWithItFromTheCommandLineAndRecordsIt()
    {
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor",
            "10", "--epochs", "1",
            "--backbone", "resnet8", "--batch-size", "32", "--out", s1, "--threads", "2");
        Assert.True(rc == 0, output);
        var s2 = Path.Combine(runs.Path, "mix");
        // The method's option is an override like any key: no --config needed.
        (rc, output) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--fusion", "feature-mixup",
            "feature_mixup.alpha=0.4",
            "--epochs", "2", "--batch-size", "32", "--out", s2);
        Assert.True(rc == 0, output);
        Assert.Contains("stage II feature-mixup", output);
        var metrics = new RunFolder(s2).ReadMetrics();
        Assert.True(metrics.Completed);
        Assert.All(metrics.Epochs, e => Assert.True(double.IsFinite(e.TrainLoss) && e.TrainLoss > 0));
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(s2,
            "config.json"))).RootElement.GetProperty("config");
        Assert.Equal("feature-mixup", config.GetProperty("fusion").GetString());
        Assert.Equal("0.4", config.GetProperty("method_options").GetProperty("feature_mixup.alpha").GetString());
        Assert.Contains("fusion FeatureMixup(alpha=0.4, mix_labels=True)", File.ReadAllText(Path.Combine(s2,
            "log.txt")));
        // Its option is refused for H2T, and a sweep over rho refuses a method that does not read rho.
        (rc, output) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "feature_mixup.alpha=0.4",
            "--out", Path.Combine(runs.Path, "x"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains(
            "override 'feature_mixup.alpha=0.4': feature_mixup.alpha: feature_mixup.alpha is an option of another " +
            "method", output);
        (rc, output) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--fusion", "feature-mixup",
            "--out", Path.Combine(runs.Path, "y"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("does not read rho", output);
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }
}
