using H2T.Cli;
using H2T.Configuration;
using H2T.Losses;
using H2T.Runs;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;
using static TorchSharp.torch;
using static H2T.Tests.Losses.LossFixture;

namespace H2T.Tests.Losses;

/// <summary>The VS loss, the loss with two hyperparameters added through the loss table's own options: its values,
/// its options as config keys, and a stage-I run with it.</summary>
public sealed class VsLossTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    public VsLossTests() => Init();

    static double Eval(ClassificationLoss loss)
    {
        using var scope = NewDisposeScope();
        return Value(loss.Forward(Logits(), Targets()));
    }

    [Fact]
    public void ItMatchesNumpyAndReducesToLogitAdjustmentAtGammaZero()
    {
        // numpy: a = z * (n / n.max())**g + t * log(n / n.sum()); (-log_softmax(a)[range(4), y]).mean()
        using (var loss = new VsLoss(Counts)) Assert.Equal(3.017642473970302, Eval(loss), Tol);
        using (var loss = new VsLoss(Counts, gamma: 0.5, tau: 1.5))
        {
            Assert.Equal(4.49232212634461, Eval(loss), Tol);
            Assert.Equal("vs", loss.Name);
        }
        using var vs = new VsLoss(Counts, gamma: 0, tau: 0.7);
        using var la = new LogitAdjustedLoss(Counts, 0.7);
        Assert.Equal(Eval(la), Eval(vs), Tol);
        Assert.Throws<ArgumentOutOfRangeException>(() => new VsLoss(Counts, gamma: -1));
    }

    [Fact]
    public void ItsOptionsAreConfigKeysCheckedWhereTheyWereSet()
    {
        var c = ReferenceConfig.Bind(StageMode.StageOne, [ConfigReader.ReadOverride("loss.type=VSLoss"),
            ConfigReader.ReadOverride("loss.VS.gamma=0.5")]);
        using (var loss = (VsLoss)LossFactory.Create(c.CheckedStageOne!.Value.Loss, Counts)) Assert.Equal((0.5, 1.0),
            (loss.Gamma, loss.Tau));
        var e = Assert.Throws<ConfigException>(() => ReferenceConfig.Bind(StageMode.StageOne,
            [ConfigReader.ReadOverride("loss.type=vs"), ConfigReader.ReadOverride("loss.VS.tau=-1")]));
        Assert.Equal("override 'loss.VS.tau=-1': loss.VS.tau: loss.VS.tau must be a number >= 0, got '-1'", e.Message);
        e = Assert.Throws<ConfigException>(() => ReferenceConfig.Bind(StageMode.StageOne,
            [ConfigReader.ReadOverride("loss.VS.tau=2")]));
        Assert.Contains("loss.VS.tau is an option of another method; loss 'ce' takes none", e.Message);
    }

    [Fact]
    public void StageOneTrainsWithItFromTheCommandLine()
    {
        var s1 = Path.Combine(runs.Path, "vs");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor",
            "10", "--epochs", "1",
            "--backbone", "resnet8", "--batch-size", "32", "--mixup", "0", "--loss", "vs", "loss.VS.tau=1.5", "--out",
                s1, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.True(new RunFolder(s1).ReadMetrics().Completed);
        Assert.Contains("\"loss.VS.tau\":\"1.5\"", File.ReadAllText(Path.Combine(s1, "config.json")).Replace(" ", "",
            StringComparison.Ordinal));
        (rc, output) = CliRunner.Run("info");
        Assert.Equal(0, rc);
        Assert.Contains("loss vs: loss.VS.gamma", output);
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }
}
