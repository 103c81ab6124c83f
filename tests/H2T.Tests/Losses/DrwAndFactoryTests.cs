using H2T.Losses;
using H2T.Settings;
using static TorchSharp.torch;
using static H2T.Tests.Losses.LossFixture;

namespace H2T.Tests.Losses;

/// <summary>Deferred re-weighting switches at its epoch; the factory maps names, aliases and settings.</summary>
public sealed class DrwAndFactoryTests
{
    public DrwAndFactoryTests() => Init();

    static double Eval(ClassificationLoss loss, Tensor logits)
    {
        using var scope = NewDisposeScope();
        return Value(loss.Forward(logits, Targets()));
    }

    [Fact]
    public void LdamDrwSwitchesToClassBalancedWeightsAtTheStartEpoch()
    {
        using var loss = LossFactory.Create(new LossConfig("ldam") { DrwStartEpoch = 3 }, Counts);
        Assert.Equal("ldam-drw", loss.Name);
        var counted = Assert.IsAssignableFrom<ClassCountLoss>(loss);
        // numpy values: unweighted LDAM and LDAM with the beta = 0.9999 weights (weighted-mean reduction).
        const double unweighted = 10.507008551789726, weighted = 19.905702758240583;
        Assert.Null(counted.CurrentWeights);
        Assert.Equal(unweighted, Eval(loss, Cosines()), 1e-9);
        loss.OnEpochStart(2, 10);
        Assert.Equal(unweighted, Eval(loss, Cosines()), 1e-9);
        loss.OnEpochStart(3, 10);
        Assert.NotNull(counted.CurrentWeights);
        Assert.Equal(weighted, Eval(loss, Cosines()), 1e-9);
        loss.OnEpochStart(9, 10);
        Assert.Equal(weighted, Eval(loss, Cosines()), 1e-9);
        // A resumed run starting before the switch must be unweighted again: the state is a function of the epoch.
        loss.OnEpochStart(0, 10);
        Assert.Equal(unweighted, Eval(loss, Cosines()), 1e-9);
    }

    [Fact]
    public void CeDrwMatchesCbCeOnceSwitched()
    {
        using var drw = LossFactory.Create(new LossConfig("ce") { DrwStartEpoch = 1 }, Counts);
        using var cb = LossFactory.Create(new LossConfig("cb-ce"), Counts);
        Assert.Equal("ce-drw", drw.Name);
        Assert.Equal("cb-ce", cb.Name);
        drw.OnEpochStart(0, 5);
        Assert.Equal(0.7137079058270546, Eval(drw, Logits()), Tol);
        drw.OnEpochStart(1, 5);
        Assert.Equal(1.003634170357299, Eval(drw, Logits()), Tol);
        Assert.Equal(1.003634170357299, Eval(cb, Logits()), Tol);
    }

    [Fact]
    public void FactoryBuildsEveryCanonicalTypeWithItsSettings()
    {
        var expected = new Dictionary<string, Type>
        {
            ["ce"] = typeof(CrossEntropyLoss), ["cb-ce"] = typeof(CrossEntropyLoss), ["focal"] = typeof(FocalLoss),
            ["cb-focal"] = typeof(FocalLoss), ["bsce"] = typeof(LogitAdjustedLoss),
                ["logit-adjust"] = typeof(LogitAdjustedLoss),
            ["ldam"] = typeof(LdamLoss), ["las"] = typeof(LabelAwareSmoothingLoss), ["gcl"] = typeof(GclLoss),
            ["ride"] = typeof(RideLoss), ["reslt"] = typeof(ResLtLoss),
        };
        // Every loss of the table builds under its name; the ones listed here are the types they were (a loss added
        // with its own test, as VsLossTests, needs no line here).
        Assert.Subset(LossFactory.CanonicalNames.ToHashSet(), expected.Keys.ToHashSet());
        foreach (var name in LossFactory.CanonicalNames)
        {
            using var loss = LossFactory.Create(new LossConfig(name) { LogitAdjustTau = 0.5 }, Counts);
            if (expected.TryGetValue(name, out var type)) Assert.IsType(type, loss);
            Assert.Equal(name, loss.Name);
        }
        using var focal = (FocalLoss)LossFactory.Create(new LossConfig("focal") { FocalGamma = 2.5 }, Counts);
        Assert.Equal(2.5, focal.Gamma);
        using var gcl = (GclLoss)LossFactory.Create(new LossConfig("GCL") { GclNoiseMul = 0.7, GclScale = 20,
            GclMaxMargin = 0.1, GclFocalGamma = 1 }, Counts);
        Assert.Equal((0.7, 20.0, 0.1, (double?)1.0), (gcl.NoiseMul, gcl.Scale, gcl.Margin, gcl.FocalGamma));
        using var las = (LabelAwareSmoothingLoss)LossFactory.Create(new LossConfig("las") { SmoothShape = "Convex",
            SmoothHead = 0.3, SmoothTail = 0.0 }, Counts);
        Assert.Equal(SmoothingShape.Convex, las.Shape);
        Assert.Equal(0.3, las.Smoothing[0], 1e-12);
    }

    [Theory]
    [InlineData("CrossEntropy", "ce")]
    [InlineData("CE", "ce")]
    [InlineData("BalancedSoftmax", "bsce")]
    [InlineData("BS", "bsce")]
    [InlineData("LDAM", "ldam")]
    [InlineData("LabelAwareSmoothing", "las")]
    [InlineData("MisLAS", "las")]
    [InlineData("GCL", "gcl")]
    [InlineData(" Focal ", "focal")]
    public void AliasesResolve(string alias, string canonical)
    {
        Assert.Equal(canonical, LossFactory.Resolve(alias));
        Assert.Contains(LossFactory.Names, n => string.Equals(n, alias.Trim(), StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void UnknownTypeNamesItAndListsTheValidOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => LossFactory.Create(new LossConfig("hinge"), Counts));
        Assert.Contains("'hinge'", e.Message);
        foreach (var n in LossFactory.CanonicalNames)
            Assert.Contains(n, e.Message);
        Assert.Throws<ArgumentException>(() => LossFactory.Create(new LossConfig("las") { SmoothShape = "wavy" },
            Counts));
        Assert.Throws<ArgumentException>(() => LabelAwareSmoothingLoss.ParseShape("1"));
        Assert.Throws<ArgumentException>(() => LabelAwareSmoothingLoss.ParseShape("concave, linear"));
        Assert.Equal(SmoothingShape.Exp, LabelAwareSmoothingLoss.ParseShape(" EXP "));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossFactory.Create(new LossConfig("ce") { DrwStartEpoch = -2 },
            Counts));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossFactory.Create(new LossConfig("cb-ce") { CbBeta = 1.0 },
            Counts));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossFactory.Create(new LossConfig("focal") { FocalGamma = -1 },
            Counts));
    }

    [Fact]
    public void OnlyTheCosineLossesAskForANormalisedHead()
    {
        foreach (var name in LossFactory.CanonicalNames)
        {
            using var loss = LossFactory.Create(new LossConfig(name), Counts);
            Assert.Equal(name is "ldam" or "gcl", loss.WantsNormalizedClassifier);
        }
    }
}
