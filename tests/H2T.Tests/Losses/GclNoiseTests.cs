using H2T.Losses;
using static TorchSharp.torch;
using static H2T.Tests.Losses.LossFixture;

namespace H2T.Tests.Losses;

/// <summary>GCL's Gaussian clouds: size per class, clamp, sign, determinism under the global seed.</summary>
public sealed class GclNoiseTests
{
    public GclNoiseTests() => Init();

    [Fact]
    public void CloudSizesAreLogCountGaps()
    {
        using var loss = new GclLoss(Counts);
        Assert.Equal(new[] { 0.0, Math.Log(10), Math.Log(100) }, loss.CloudSizes.ToArray(),
            new ToleranceComparer(1e-12));
    }

    [Fact]
    public void PerturbationIsHalfNormalNoiseTimesRelativeCloudSize()
    {
        using var scope = NewDisposeScope();
        using var loss = new GclLoss(Counts, noiseMul: 0.5);
        var z = zeros([4000, 3], float64);
        manual_seed(123);
        var shift = (z - loss.Perturb(z)).data<double>().ToArray();
        // Same draw by hand: N(0, 1/3) = randn / 3 from the global CPU generator, clamped to [-1, 1], absolute value.
        manual_seed(123);
        var e = (randn([4000, 3], float32) / 3).clamp(-1, 1).abs().to(float64).data<double>().ToArray();
        double[] rel = [0, Math.Log(10) / Math.Log(100), 1];
        for (int i = 0; i < shift.Length; i++)
            Assert.Equal(0.5 * e[i] * rel[i % 3], shift[i], 1e-6);
        // Head class untouched; tail shifted by at most noiseMul; mean |N(0,1/3)| ~ (1/3) sqrt(2/pi) = 0.266.
        var tail = Enumerable.Range(0, 4000).Select(i => shift[i * 3 + 2]).ToArray();
        Assert.All(Enumerable.Range(0, 4000), i => Assert.Equal(0.0, shift[i * 3]));
        Assert.True(tail.Max() <= 0.5 + 1e-12 && tail.Min() >= 0);
        Assert.Equal(0.5 * Math.Sqrt(2 / Math.PI) / 3, tail.Average(), 0.01);
    }

    [Fact]
    public void SameSeedSameLossOtherSeedOtherLossEvalModeDeterministic()
    {
        using var scope = NewDisposeScope();
        using var loss = new GclLoss(Counts, noiseMul: 0.5, scale: 30);
        double Run(int seed)
        {
            manual_seed(seed);
            return Value(loss.Forward(Cosines(), Targets()));
        }
        Assert.Equal(Run(7), Run(7));
        Assert.NotEqual(Run(7), Run(8));
        // The clouds lower non-head logits, so the loss differs from the noise-free one.
        loss.Training = false;
        var clean = Value(loss.Forward(Cosines(), Targets()));
        Assert.Equal(clean, Run(1));
        Assert.Equal(clean, Run(2));
        loss.Training = true;
        Assert.NotEqual(clean, Run(1), 6);
    }

    [Fact]
    public void OwnGeneratorMakesTheLossIndependentOfTheGlobalStream()
    {
        using var scope = NewDisposeScope();
        using var a = new GclLoss(Counts, generator: new Generator(5));
        using var b = new GclLoss(Counts, generator: new Generator(5));
        manual_seed(1);
        var la = Value(a.Forward(Cosines(), Targets()));
        manual_seed(2);
        var lb = Value(b.Forward(Cosines(), Targets()));
        Assert.Equal(la, lb);
    }

    [Fact]
    public void MixedLossSharesOneNoiseDraw()
    {
        using var scope = NewDisposeScope();
        using var loss = new GclLoss(Counts);
        var y = Targets();
        // With equal targets the mixed loss must equal the plain loss for the same seed: one draw, not two.
        manual_seed(11);
        var plain = Value(loss.Forward(Cosines(), y));
        manual_seed(11);
        Assert.Equal(plain, Value(loss.ForwardMixed(Cosines(), y, y, 0.3)), 1e-12);
    }

    sealed class ToleranceComparer(double tol) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tol;
        public int GetHashCode(double obj) => 0;
    }
}
