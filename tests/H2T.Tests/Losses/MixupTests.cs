using H2T.Losses;
using static TorchSharp.torch;
using static H2T.Tests.Losses.LossFixture;

namespace H2T.Tests.Losses;

public sealed class MixupTests
{
    public MixupTests() => Init();

    [Theory]
    [InlineData(0.2)]
    [InlineData(1.0)]
    [InlineData(2.0)]
    public void SampleBetaHasTheBetaMeanAndVariance(double alpha)
    {
        var rng = new Random(42);
        const int n = 200_000;
        double sum = 0, sumSq = 0;
        for (int i = 0; i < n; i++)
        {
            var x = Mixup.SampleBeta(alpha, rng);
            Assert.InRange(x, 0.0, 1.0);
            sum += x;
            sumSq += x * x;
        }
        double mean = sum / n, variance = sumSq / n - mean * mean;
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)). Tolerances are ~5 standard errors at n = 200k.
        var expectedVar = 1 / (4 * (2 * alpha + 1));
        Assert.Equal(0.5, mean, 5 * Math.Sqrt(expectedVar / n));
        Assert.Equal(expectedVar, variance, 0.01 * expectedVar);
    }

    [Fact]
    public void SampleBetaIsReproducibleAndRejectsBadAlpha()
    {
        var a = new Random(3);
        var first = Enumerable.Range(0, 5).Select(_ => Mixup.SampleBeta(0.5, a)).ToArray();
        var b = new Random(3);
        Assert.Equal(first, Enumerable.Range(0, 5).Select(_ => Mixup.SampleBeta(0.5, b)).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => Mixup.SampleBeta(0, new Random(1)));
        // Tiny alpha concentrates mass at 0 and 1 but must never yield NaN (0/0).
        var r = new Random(9);
        Assert.All(Enumerable.Range(0, 1000).Select(_ => Mixup.SampleBeta(0.005, r)),
            x => Assert.False(double.IsNaN(x)));
    }

    [Fact]
    public void ApplyMixesEachSampleWithItsPermutedPartner()
    {
        using var scope = NewDisposeScope();
        // Image i is filled with the value i and labelled i, so mixed[i] must be lam*i + (1-lam)*targetsB[i].
        const int n = 8;
        var images = arange(n, dtype: float32).reshape(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous();
        var targets = arange(n, dtype: int64);
        var (mixed, ya, yb, lam) = Mixup.Apply(images, targets, 1.0, new Random(4), new Generator(17));
        Assert.InRange(lam, 0.0, 1.0);
        Assert.Equal(targets.data<long>().ToArray(), ya.data<long>().ToArray());
        var partner = yb.data<long>().ToArray();
        Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), partner.Order()); // a permutation
        Assert.NotEqual(Enumerable.Range(0, n).Select(i => (long)i), partner);       // seed 17 does shuffle
        var m = mixed.data<float>().ToArray();
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 12; k++)
                Assert.Equal(lam * i + (1 - lam) * partner[i], m[i * 12 + k], 1e-5);
        // Same seeds, same batch.
        var again = Mixup.Apply(images, targets, 1.0, new Random(4), new Generator(17));
        Assert.Equal(lam, again.Lambda);
        Assert.Equal(partner, again.TargetsB.data<long>().ToArray());
    }

    [Fact]
    public void AlphaZeroKeepsTheImagesAndReturnsFreshTensors()
    {
        using var scope = NewDisposeScope();
        var images = randn([4, 1, 2, 2]);
        var targets = tensor(new long[] { 0, 1, 2, 1 });
        var (mixed, ya, _, lam) = Mixup.Apply(images, targets, 0, new Random(1));
        Assert.Equal(1.0, lam);
        Assert.True(mixed.allclose(images));
        ya.Dispose(); // an alias: disposing it must leave the caller's targets usable
        Assert.Equal(4, targets.data<long>().ToArray().Length);
        Assert.Throws<ArgumentException>(() => Mixup.Apply(images, targets[..3], 1, new Random(1)));
    }
}
