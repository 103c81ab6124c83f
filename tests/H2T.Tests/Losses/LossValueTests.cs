using H2T.Losses;
using static TorchSharp.torch;
using static H2T.Tests.Losses.LossFixture;

namespace H2T.Tests.Losses;

/// <summary>Each loss against numbers computed independently with numpy on the shared 3-class example.</summary>
public sealed class LossValueTests
{
    public LossValueTests() => Init();

    static double Eval(ClassificationLoss loss, Tensor logits)
    {
        using var scope = NewDisposeScope();
        return Value(loss.Forward(logits, Targets()));
    }

    [Fact]
    public void CrossEntropyMatchesNumpy()
    {
        using var loss = new CrossEntropyLoss(Counts);
        // numpy: (-log_softmax(z)[range(4), y]).mean()
        Assert.Equal(0.7137079058270546, Eval(loss, Logits()), Tol);
        Assert.Equal("ce", loss.Name);
    }

    [Fact]
    public void ClassBalancedCrossEntropyMatchesNumpy()
    {
        using var loss = new CrossEntropyLoss(Counts, ClassWeighting.ClassBalanced(Counts, 0.9999));
        // numpy: (nll * w[y]).sum() / w[y].sum()  (PyTorch's weighted-mean reduction)
        Assert.Equal(1.003634170357299, Eval(loss, Logits()), Tol);
        Assert.Equal("cb-ce", loss.Name);
    }

    [Fact]
    public void EffectiveNumberWeightsMatchNumpyAndSumToClassCount()
    {
        var w = ClassWeighting.EffectiveNumberWeights(Counts, 0.9999);
        for (int c = 0; c < 3; c++)
            Assert.Equal(CbWeights[c], w[c], 1e-12);
        Assert.Equal(3.0, w.Sum(), 1e-12);
        // beta = 0 is "no re-weighting": every weight 1.
        Assert.All(ClassWeighting.EffectiveNumberWeights(Counts, 0), x => Assert.Equal(1.0, x, 1e-15));
    }

    [Theory]
    // numpy: lp = log_softmax(z)[range(4), y]; ((1 - exp(lp))**g * -lp).mean()
    [InlineData(1.0, 0.42350082032959335)]
    [InlineData(2.0, 0.28054952046707143)]
    public void FocalMatchesNumpy(double gamma, double expected)
    {
        using var loss = new FocalLoss(Counts, gamma);
        Assert.Equal(expected, Eval(loss, Logits()), Tol);
    }

    [Fact]
    public void ClassBalancedFocalMatchesNumpy()
    {
        using var loss = new FocalLoss(Counts, 1.0, ClassWeighting.ClassBalanced(Counts, 0.9999));
        // numpy: ((1 - exp(lp)) * -lp * w[y]).mean()  (focal reduction: batch mean, not weight-normalised)
        Assert.Equal(0.9668140686016072, Eval(loss, Logits()), Tol);
        Assert.Equal("cb-focal", loss.Name);
    }

    [Fact]
    public void BalancedSoftmaxMatchesNumpy()
    {
        using var loss = new LogitAdjustedLoss(Counts, tau: 1.0);
        // numpy: nll(z + log(counts / counts.sum())).mean()
        Assert.Equal(2.660960431187962, Eval(loss, Logits()), Tol);
        Assert.Equal("bsce", loss.Name);
    }

    [Fact]
    public void LogitAdjustmentWithHalfTauMatchesNumpy()
    {
        using var loss = new LogitAdjustedLoss(Counts, tau: 0.5);
        // numpy: nll(z + 0.5 * log(prior)).mean()
        Assert.Equal(1.488512648085, Eval(loss, Logits()), Tol);
        Assert.Equal("logit-adjust", loss.Name);
    }

    [Fact]
    public void LdamMarginsAndValueMatchNumpy()
    {
        using var loss = new LdamLoss(Counts, maxMargin: 0.5, scale: 30);
        // numpy: m = n**-0.25; m *= 0.5 / m.max()
        double[] margins = [0.15811388300841897, 0.28117066259517454, 0.5];
        for (int c = 0; c < 3; c++)
            Assert.Equal(margins[c], loss.Margins[c], 1e-12);
        // numpy: nll(30 * (zc - onehot(y) * m)).mean()
        Assert.Equal(10.507008551789726, Eval(loss, Cosines()), 1e-9);
        Assert.True(loss.WantsNormalizedClassifier);
    }

    [Fact]
    public void GclInEvalModeMatchesNumpy()
    {
        // Eval mode switches the noise off, leaving the deterministic margin + scale part.
        using var loss = new GclLoss(Counts, noiseMul: 0.5, scale: 20, margin: 0.1) { Training = false };
        // numpy: nll(20 * (zc - 0.1 * onehot(y))).mean()
        Assert.Equal(3.53235422932889, Eval(loss, Cosines()), 1e-9);
        Assert.True(loss.WantsNormalizedClassifier);
    }

    [Fact]
    public void GclStageTwoFocalWithClassBalancedWeightsMatchesNumpy()
    {
        using var loss = new GclLoss(Counts, noiseMul: 0.5, scale: 20, margin: 0.1, focalGamma: 1.0,
            weighting: ClassWeighting.ClassBalanced(Counts, 0.9999)) { Training = false };
        // numpy: o = 20 * (zc - 0.1 * onehot); lp = log_softmax(o)[range(4), y]; ((1 - exp(lp)) * -lp * w[y]).mean()
        Assert.Equal(9.468868783680518, Eval(loss, Cosines()), 1e-9);
    }

    [Theory]
    // numpy: eps from the MisLAS formulas with head 0.4, tail 0.1, power 3;
    //        ((1 - eps[y]) * -lp[range(4), y] + eps[y] * -lp.mean(1)).mean()
    [InlineData("concave", 0.4, 0.14269445148198556, 0.1, 0.9016569810740522)]
    [InlineData("linear", 0.4, 0.1272727272727273, 0.1, 0.8990866937058426)]
    [InlineData("convex", 0.39999999999999997, 0.1030535674357202, 0.09999999999999998, 0.8950501670663413)]
    [InlineData("exp", 0.4, 0.10022539444027048, 0.1, 0.8945788049004331)]
    public void LabelAwareSmoothingFactorsAndValueMatchNumpy(string shape, double e0, double e1, double e2,
        double expected)
    {
        using var loss = new LabelAwareSmoothingLoss(Counts, 0.4, 0.1, LabelAwareSmoothingLoss.ParseShape(shape),
            power: 3);
        Assert.Equal(e0, loss.Smoothing[0], 1e-12);
        Assert.Equal(e1, loss.Smoothing[1], 1e-12);
        Assert.Equal(e2, loss.Smoothing[2], 1e-12);
        Assert.Equal(expected, Eval(loss, Logits()), Tol);
    }

    [Fact]
    public void SmoothingShapesAreOrderedConcaveAboveLinearAboveConvexInTheMiddle()
    {
        // Many counts so the middle is well populated: concave sin rises first, convex last.
        int[] counts = [500, 300, 150, 80, 40, 20, 5];
        var cc = LabelAwareSmoothingLoss.SmoothingFactors(counts, 0.4, 0.1, SmoothingShape.Concave);
        var li = LabelAwareSmoothingLoss.SmoothingFactors(counts, 0.4, 0.1, SmoothingShape.Linear);
        var cv = LabelAwareSmoothingLoss.SmoothingFactors(counts, 0.4, 0.1, SmoothingShape.Convex);
        for (int c = 1; c < counts.Length - 1; c++)
        {
            Assert.True(cc[c] > li[c] && li[c] > cv[c], $"class {c}: {cc[c]} > {li[c]} > {cv[c]} expected");
            Assert.True(cc[c] > cc[c + 1], "smoothing must fall with the class count");
        }
        foreach (var e in new[] { cc, li, cv })
        {
            Assert.Equal(0.4, e[0], 1e-12);
            Assert.Equal(0.1, e[^1], 1e-12);
        }
    }

    [Fact]
    public void GradientsMatchTheClosedForms()
    {
        // numpy: d/dz mean_i CE(z_i + log prior) = (softmax(z + log prior) - onehot) / N
        double[] bsce = [-5.5755386932162254e-03, 5.4538469195576323e-03, 1.2169177365859162e-04,
            1.9045723472453507e-01, -1.9278348464257611e-01, 2.3262499180410597e-03,
            2.0130003258271392e-01, 4.0536848562733541e-02, -2.4183688114544746e-01,
            2.4513202132487374e-01, 4.0520050592511864e-03, -2.4918402638412487e-01];
        // numpy: (softmax(z) - q) / N with q = (1 - eps_y) onehot + eps_y / C (concave eps)
        double[] las = [0.01306592531398565, 0.01048926470167583, -0.02355519001566147,
            0.03595047772080533, -0.08249323579386139, 0.04654275807305605,
            0.02703258457815139, 0.06288487961309763, -0.08991746419124905,
            0.15853691816400836, 0.01925013371643378, -0.17778705188044214];
        // numpy: 30 * (softmax(30 * (zc - onehot * m)) - onehot) / N
        double[] ldam = [-6.5300932078349305e-07, 6.5300530982376275e-07, 4.0122032914080779e-12,
            2.0641061472957717e-01, -2.0643608782310141e-01, 2.5473093525188233e-05,
            5.6862185815011865e-09, 7.4990745349945858e+00, -7.4990745406808044e+00,
            7.4999999999858682e+00, 1.4096466124016582e-11, -7.4999999999999654e+00];
        using var b = new LogitAdjustedLoss(Counts);
        using var l = new LabelAwareSmoothingLoss(Counts, 0.4, 0.1, SmoothingShape.Concave);
        using var d = new LdamLoss(Counts);
        AssertGrad(b, Logits(requiresGrad: true), bsce);
        AssertGrad(l, Logits(requiresGrad: true), las);
        AssertGrad(d, Cosines(requiresGrad: true), ldam);

        static void AssertGrad(ClassificationLoss loss, Tensor x, double[] expected)
        {
            using var scope = NewDisposeScope();
            loss.Forward(x, Targets()).backward();
            var g = x.grad!.data<double>().ToArray();
            for (int i = 0; i < expected.Length; i++)
                Assert.Equal(expected[i], g[i], 1e-9);
        }
    }
}
