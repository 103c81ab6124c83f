using H2T.Losses;
using H2T.Settings;
using TorchSharp;
using static TorchSharp.torch;
using static H2T.Tests.Losses.LossFixture;

namespace H2T.Tests.Losses;

/// <summary>Cheap identities between losses that catch sign, prior, reduction and broadcasting mistakes.</summary>
public sealed class LossIdentityTests
{
    static readonly int[] LongTail = [500, 200, 80, 30, 12, 5];
    static readonly int[] Uniform = [40, 40, 40, 40, 40, 40];

    public LossIdentityTests() => Init();

    static double Ce(Tensor logits, Tensor targets)
    {
        using var ce = new CrossEntropyLoss(LongTail);
        return Value(ce.Forward(logits, targets));
    }

    static double L(ClassificationLoss loss, Tensor logits, Tensor targets)
    {
        using (loss)
            return Value(loss.Forward(logits, targets));
    }

    [Fact]
    public void CrossEntropyEqualsTorchCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 1);
        Assert.Equal(nn.functional.cross_entropy(z, y).item<double>(), Ce(z, y), 1e-12);
    }

    [Fact]
    public void BalancedSoftmaxWithUniformCountsIsCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 2);
        Assert.Equal(Ce(z, y), L(new LogitAdjustedLoss(Uniform), z, y), 1e-12);
    }

    [Fact]
    public void LogitAdjustWithTauZeroIsCrossEntropyEvenWhenLongTailed()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 3);
        Assert.Equal(Ce(z, y), L(new LogitAdjustedLoss(LongTail, tau: 0), z, y), 1e-12);
        // ...and with the long-tailed prior it must differ, otherwise the prior is not applied.
        Assert.NotEqual(Ce(z, y), L(new LogitAdjustedLoss(LongTail, tau: 1), z, y), 6);
    }

    [Fact]
    public void BalancedSoftmaxIsInvariantToScalingAllCounts()
    {
        // Only the prior matters: log(k n_c) shifts every logit by the same log k.
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 4);
        Assert.Equal(L(new LogitAdjustedLoss(LongTail), z, y),
            L(new LogitAdjustedLoss(LongTail.Select(n => n * 7).ToArray()), z, y), 1e-12);
    }

    [Fact]
    public void ClassBalancedWeightsWithUniformCountsAreCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 5);
        Assert.Equal(Ce(z, y), L(new CrossEntropyLoss(Uniform, ClassWeighting.ClassBalanced(Uniform, 0.9999)), z, y),
            1e-12);
    }

    [Fact]
    public void FocalWithGammaZeroIsCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 6);
        Assert.Equal(Ce(z, y), L(new FocalLoss(LongTail, 0), z, y), 1e-12);
        // gamma > 0 down-weights easy samples, so the loss can only shrink.
        Assert.True(L(new FocalLoss(LongTail, 2), z, y) < Ce(z, y));
    }

    [Fact]
    public void LabelAwareSmoothingWithZeroSmoothingIsCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 7);
        foreach (var shape in Enum.GetValues<SmoothingShape>())
            Assert.Equal(Ce(z, y), L(new LabelAwareSmoothingLoss(LongTail, 0, 0, shape), z, y), 1e-12);
    }

    [Fact]
    public void LabelAwareSmoothingWithEqualHeadAndTailIsUniformLabelSmoothing()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 8);
        var expected = nn.functional.cross_entropy(z, y, label_smoothing: 0.2).item<double>();
        Assert.Equal(expected, L(new LabelAwareSmoothingLoss(LongTail, 0.2, 0.2, SmoothingShape.Convex), z, y), 1e-12);
    }

    [Fact]
    public void LdamWithZeroMarginIsScaledCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 9);
        Assert.Equal(Ce(z * 30, y), L(new LdamLoss(LongTail, maxMargin: 0, scale: 30), z, y), 1e-10);
    }

    [Fact]
    public void GclWithUniformCountsHasNoCloudsEvenInTraining()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 10);
        // Uniform counts: m_c = 0 for all c, so only margin 0 + scale are left.
        Assert.Equal(Ce(z * 30, y), L(new GclLoss(Uniform, noiseMul: 0.5, scale: 30, margin: 0), z, y), 1e-10);
    }

    [Fact]
    public void MixedLossWithOneLambdaOrEqualTargetsIsThePlainLoss()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 11);
        var (_, y2) = RandomBatch(16, 6, seed: 12);
        using var loss = new LabelAwareSmoothingLoss(LongTail);
        var plain = Value(loss.Forward(z, y));
        Assert.Equal(plain, Value(loss.ForwardMixed(z, y, y2, 1.0)), 1e-12);
        Assert.Equal(plain, Value(loss.ForwardMixed(z, y, y, 0.3)), 1e-12);
        var other = Value(loss.Forward(z, y2));
        Assert.Equal(0.3 * plain + 0.7 * other, Value(loss.ForwardMixed(z, y, y2, 0.3)), 1e-12);
    }

    [Fact]
    public void Float32LogitsGiveTheFloat64ValueAndAScalar()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(16, 6, seed: 13);
        foreach (var type in LossFactory.CanonicalNames)
        {
            using var loss = LossFactory.Create(new LossConfig(type), LongTail);
            loss.Training = false; // GCL noise off so both dtypes see the same function
            var l64 = loss.Forward(z, y);
            var l32 = loss.Forward(z.to(float32), y);
            Assert.Equal(0, l32.ndim);
            Assert.Equal(ScalarType.Float32, l32.dtype);
            Assert.Equal(l64.item<double>(), l32.item<float>(), 1e-3);
        }
    }

    [Fact]
    public void ForwardLeavesNoLiveTensorsBehind()
    {
        using var scope = NewDisposeScope();
        var (z, y) = RandomBatch(32, 6, seed: 14);
        var losses = LossFactory.CanonicalNames
            // ResLT takes no re-weighting
            .Select(t => LossFactory.Create(new LossConfig(t) { DrwStartEpoch = t == "reslt" ? -1 : 0 },
                LongTail)).ToList();
        void Step()
        {
            using var step = NewDisposeScope();
            foreach (var loss in losses)
            {
                var zz = z.detach().requires_grad_();
                loss.ForwardMixed(zz, y, y.flip(0), 0.4).backward();
            }
        }
        Step(); // first call builds the cached per-class tensors
        var before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++)
            Step();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        foreach (var loss in losses)
            loss.Dispose();
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        using var scope = NewDisposeScope();
        using var loss = new CrossEntropyLoss(LongTail);
        var (z, y) = RandomBatch(8, 6, seed: 15);
        Assert.Contains("classes", Assert.Throws<ArgumentException>(() => loss.Forward(z[.., ..5], y)).Message);
        Assert.Contains("int64", Assert.Throws<ArgumentException>(() => loss.Forward(z, y.to(int32))).Message);
        Assert.Contains("N = 8", Assert.Throws<ArgumentException>(() => loss.Forward(z, y[..4])).Message);
        Assert.Throws<ArgumentException>(() => new CrossEntropyLoss([10, 0, 3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => loss.ForwardMixed(z, y, y, 1.5));
    }
}
