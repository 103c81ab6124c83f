using H2T.Runs;
using H2T.Cli;
using H2T.Configuration;
using H2T.Losses;
using H2T.Models;
using H2T.Settings;
using H2T.Training;
using Spectre.Console.Testing;
using static TorchSharp.torch;
using H2T.Tests.Data;
using H2T.Tests.Training;

namespace H2T.Tests.Training;

/// <summary>CMO's minority CutMix and Decouple's tau-normalised classifier.</summary>
public sealed class DecoupleAndCmoTests : IDisposable
{
    readonly TinyLongTailedSet set = new(perClassTrain: 40, perClassTest: 10);
    readonly TempDir dir = new();

    [Fact]
    public void CutMixPastesOneMinorityBoxAndLambdaIsTheKeptArea()
    {
        using var major = zeros(4, 1, 28, 28);
        using var minor = ones(4, 1, 28, 28);
        for (int seed = 0; seed < 20; seed++)
        {
            var (mixed, lam) = CutMixMinority.Apply(major, minor, 1.0, new Random(seed));
            using (mixed)
            {
                // Every pixel is 0 (majority) or 1 (minority); the minority share is exactly 1 - lam, the same in each
                // image.
                var perImage = mixed.sum([1L, 2L, 3L]).data<float>().ToArray();
                Assert.All(perImage, v => Assert.Equal((1 - lam) * 28 * 28, v, 3));
                Assert.Equal(0f, major.sum().item<float>()); // the inputs are untouched
            }
        }
        Assert.Throws<ArgumentException>(() => CutMixMinority.Apply(major, ones(4, 1, 32, 32), 1.0, new Random(0)));
    }

    StageOneConfig StageOne(CmoConfig? cmo, double mixup = 0) => new()
    {
        Data = set.Config(), Backbone = "resnet8", Epochs = 2, MixupAlpha = mixup, Cmo = cmo,
        Optim = new OptimConfig(Lr: 0.05, BatchSize: 32), Seed = 0, Prefetch = 0, EvalEvery = 0,
    };

    [Fact]
    public void CmoTrainsAndChangesTheLossAndCannotBeCombinedWithMixup()
    {
        var plain = StageOneTrainer.Run(StageOne(null), new RunFolder(Path.Combine(dir.Path, "plain")), CPU,
            SilentObserver.Instance);
        var cmo = StageOneTrainer.Run(StageOne(new CmoConfig(Probability: 1.0, StartEpoch: 0, EndMargin: 0)),
            new RunFolder(Path.Combine(dir.Path, "cmo")), CPU, SilentObserver.Instance);
        Assert.True(cmo.Completed);
        Assert.NotEqual(plain.Epochs[0].TrainLoss, cmo.Epochs[0].TrainLoss);
        // Off outside its epochs: with start 2 of 2 epochs, CMO never fires and the run equals the plain one.
        var late = StageOneTrainer.Run(StageOne(new CmoConfig(Probability: 1.0, StartEpoch: 2, EndMargin: 0)),
            new RunFolder(Path.Combine(dir.Path, "late")), CPU, SilentObserver.Instance);
        Assert.Equal(plain.Epochs[1].TrainLoss, late.Epochs[1].TrainLoss, 5);
        var e = Assert.Throws<ConfigException>(() => StageOne(new CmoConfig(), mixup: 1).Validate());
        Assert.Contains("exclusive", e.Message);
    }

    [Fact]
    public void TauNormScalesEachClassVectorAndTheCommandChoosesTauOnValidation()
    {
        manual_seed(0);
        using var head = new LinearHead(64, 10);
        using (var zero = TauNormalization.Apply(head, 0))
        {
            Assert.True(zero.Fc.weight!.allclose(head.Fc.weight!));
            Assert.Equal(0f, zero.Fc.bias!.abs().sum().item<float>());
        }
        using (var one = TauNormalization.Apply(head, 1))
        {
            using var norms = one.Fc.weight!.norm(1);
            Assert.True(norms.allclose(ones(10), atol: 1e-5));
        }

        var s1 = Path.Combine(dir.Path, "s1");
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor", "10",
            "--epochs", "1", "--backbone", "resnet8",
            "--batch-size", "32", "--out", s1, "--val-per-class", "3"], console);
        Assert.True(rc == 0, console.Output);
        console = new TestConsole().Width(200);
        var normed = Path.Combine(dir.Path, "tau.ckpt");
        rc = CliApp.Run(["tau-norm", "--from", Path.Combine(s1, "last.ckpt"), "--tau", "0,0.5,1", "--val-per-class",
            "3", "--out", normed], console);
        Assert.True(rc == 0, console.Output);
        Assert.Contains("chosen on validation", console.Output);
        Assert.True(File.Exists(normed));
        console = new TestConsole().Width(200);
        rc = CliApp.Run(["eval", "--checkpoint", normed], console);
        Assert.True(rc == 0, console.Output);
        console = new TestConsole().Width(200);
        rc = CliApp.Run(["tau-norm", "--from", Path.Combine(s1, "last.ckpt"), "--tau", "-1"], console);
        Assert.Equal(CliApp.UsageError, rc);
    }

    [Fact]
    public void LwsInStageTwoLearnsOnlyTheScalesOfTheStageOneClassifier()
    {
        var s1 = new RunFolder(Path.Combine(dir.Path, "s1"));
        StageOneTrainer.Run(StageOne(null) with { Epochs = 1 }, s1, CPU, SilentObserver.Instance);
        var s2 = new RunFolder(Path.Combine(dir.Path, "lws"));
        var m = StageTwoTrainer.Run(s1.LastCheckpoint, new StageTwoConfig { Epochs = 1, Rho = 0.25, Classifier = "lws",
            Optim = new OptimConfig(Lr: 0.5, BatchSize: 32), Prefetch = 0 },
            s2, CPU, SilentObserver.Instance);
        Assert.True(m.Completed);
        var meta = Checkpoint.ReadMeta(s2.LastCheckpoint);
        Assert.Equal("lws", meta.Classifier);
        using var backbone = ModelFactory.CreateBackbone("resnet8", 1);
        using var linear = new LinearHead(64, 10);
        Checkpoint.Load(s1.LastCheckpoint, backbone, linear, null);
        using var lws = new LwsHead(64, 10);
        Checkpoint.Load(s2.LastCheckpoint, backbone, lws, null);
        // the classifier's weights stay as stage I left them
        Assert.True(lws.Fc.weight!.allclose(linear.Fc.weight!, rtol: 0, atol: 0));
        var scales = lws.state_dict()["scales"];
        Assert.False(scales.allclose(ones(10)));                               // the scales were learnt
        Assert.Throws<ConfigException>(() => new StageTwoConfig { Classifier = "lws",
            ReinitClassifier = true }.Validate());
    }

    /// <summary>Each method's shipped configs run end to end (stage I, then stage II from its checkpoint), shortened by
    /// overrides.</summary>
    [Theory]
    [InlineData("decouple/fmnist_stage1_ce.yaml", "decouple/fmnist_stage2_crt_H2T.yaml")]
    [InlineData("decouple/fmnist_stage1_ce.yaml", "decouple/fmnist_stage2_lws.yaml")]
    [InlineData("mislas/fmnist_stage1_mixup.yaml", "mislas/fmnist_stage2_las_H2T.yaml")]
    [InlineData("gcl/fmnist_stage1_gcl.yaml", "gcl/fmnist_stage2_gcl_H2T.yaml")]
    [InlineData("bsce-cmo/fmnist_stage1_bsce_cmo.yaml", "bsce-cmo/fmnist_stage2_bsce_H2T.yaml")]
    public void MethodConfigsTrainAndEvaluate(string stage1, string stage2)
    {
        string[] cmo = stage1.Contains("cmo", StringComparison.Ordinal) ? ["cmo.start_data_aug=0",
            "cmo.end_data_aug=0"] : [];
        new MethodConfigRun(set.Path, dir.Path, "resnet8").Run(stage1, stage2, cmo);
    }

    public void Dispose()
    {
        set.Dispose();
        dir.Dispose();
    }
}
