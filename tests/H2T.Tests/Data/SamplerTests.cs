using H2T.Data;

namespace H2T.Tests.Data;

public sealed class SamplerTests
{
    // Long-tailed labels: class c has counts[c] items, interleaved so order carries no class information.
    static readonly int[] Counts = [400, 200, 100, 50, 20, 8];
    static readonly int[] Labels = Enumerable.Range(0, Counts.Length).SelectMany(c => Enumerable.Repeat(c, Counts[c]))
        .Select((y, i) => (y, key: i * 7919 % 778)).OrderBy(t => t.key).Select(t => t.y).ToArray();

    /// <summary>Pearson chi-square of observed class counts against expected probabilities.</summary>
    static double ChiSquare(long[] observed, double[] p)
    {
        long n = observed.Sum();
        double chi = 0;
        for (int c = 0; c < p.Length; c++) { double e = n * p[c]; chi += (observed[c] - e) * (observed[c] - e) / e; }
        return chi;
    }

    // Upper 0.1% point of chi-square with 5 degrees of freedom: a correct sampler exceeds it 1 time in 1000.
    const double Chi2Df5P001 = 20.515;

    static long[] ClassHistogram(ISampler s, int epochs)
    {
        var h = new long[Counts.Length];
        for (int e = 0; e < epochs; e++)
            foreach (var i in s.Indices(e)) h[Labels[i]]++;
        return h;
    }

    static double[] Normalise(IEnumerable<double> w) { var a = w.ToArray(); var t = a.Sum(); return a.Select(x =>
        x / t).ToArray(); }

    [Fact]
    public void InstanceIsAPermutationPerEpochDeterministicInSeedAndEpoch()
    {
        var s = Samplers.Instance(Labels, 5);
        var e0 = s.Indices(0);
        Assert.Equal(Enumerable.Range(0, Labels.Length), e0.Order());
        Assert.Equal(e0, Samplers.Instance(Labels, 5).Indices(0));
        Assert.NotEqual(e0, s.Indices(1));
        Assert.NotEqual(e0, Samplers.Instance(Labels, 6).Indices(0));
        Assert.True(ChiSquare(ClassHistogram(s, 3), Normalise(Counts.Select(c => (double)c))) < 1e-9);
    }

    [Fact]
    public void ClassBalancedDrawsClassesUniformly()
    {
        var s = Samplers.ClassBalanced(Labels, 1, length: 3000);
        Assert.Equal(3000, s.Length);
        var h = ClassHistogram(s, 10);
        Assert.True(ChiSquare(h, Normalise(Counts.Select(_ => 1.0))) < Chi2Df5P001, string.Join(",", h));
        // And not the instance distribution: that hypothesis is rejected by far.
        Assert.True(ChiSquare(h, Normalise(Counts.Select(c => (double)c))) > 1000);
    }

    [Fact]
    public void ClassBalancedDrawsItemsUniformlyWithinAClass()
    {
        var s = Samplers.ClassBalanced(Labels, 2, length: 6000);
        var tail = Enumerable.Range(0, Labels.Length).Where(i => Labels[i] == 5).ToArray();
        var hits = new long[tail.Length];
        foreach (var i in s.Indices(0)) { int k = Array.IndexOf(tail, i); if (k >= 0) hits[k]++; }
        // 8 items, df 7: 0.1% point 24.32.
        Assert.True(ChiSquare(hits, Normalise(tail.Select(_ => 1.0))) < 24.32, string.Join(",", hits));
    }

    [Fact]
    public void SquareRootAndReverseFollowTheirClassWeights()
    {
        var sqrt = ClassHistogram(Samplers.SquareRoot(Labels, 3, 3000), 10);
        Assert.True(ChiSquare(sqrt, Normalise(Counts.Select(c => Math.Sqrt(c)))) < Chi2Df5P001, string.Join(",", sqrt));
        var rev = ClassHistogram(Samplers.Reverse(Labels, 4, 3000), 10);
        Assert.True(ChiSquare(rev, Normalise(Counts.Select(c => 1.0 / c))) < Chi2Df5P001, string.Join(",", rev));
        Assert.True(rev[5] > rev[0] * 20); // the rarest class dominates
    }

    [Fact]
    public void ClassAwareIsExactlyBalancedOverEveryCycleAndCyclesThroughItems()
    {
        var s = Samplers.ClassAware(Labels, 9, length: 600);
        var idx = s.Indices(0);
        for (int cycle = 0; cycle < 100; cycle++)
            Assert.Equal(Enumerable.Range(0, 6), idx.Skip(cycle * 6).Take(6).Select(i => Labels[i]).Order());
        // 100 draws of the 8-item tail class: every item 12 or 13 times (full reshuffled passes).
        var tailHits = idx.Where(i => Labels[i] == 5).GroupBy(i => i).Select(g => g.Count()).ToArray();
        Assert.Equal(8, tailHits.Length);
        Assert.All(tailHits, n => Assert.InRange(n, 12, 13));
        Assert.NotEqual(idx, s.Indices(1));
        Assert.Equal(idx, Samplers.ClassAware(Labels, 9, 600).Indices(0));
    }

    [Fact]
    public void CreateByNameAndClearErrors()
    {
        foreach (var name in Samplers.Names)
            Assert.Equal(Labels.Length, Samplers.Create(name, Labels, 0).Length);
        // One table: every spelling flags and YAML accept builds the sampler its name stands for, with the same draws.
        foreach (var alias in Samplers.Aliases.Names)
        {
            var name = Samplers.Aliases.Parse(alias);
            Assert.Contains(name, Samplers.Names);
            if (name != "instance") Assert.Equal(Samplers.Create(name, Labels, 3, 40).Indices(0), Samplers.Create(alias,
                Labels, 3, 40).Indices(0));
        }
        Assert.Equal(["instance", "balanced", "sqrt", "reverse", "class-aware"], Samplers.Names);
        var e = Assert.Throws<ArgumentException>(() => Samplers.Create("random", Labels, 0));
        Assert.Contains("instance, balanced, sqrt, reverse, class-aware", e.Message);
        Assert.Throws<ArgumentException>(() => Samplers.Instance([], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Samplers.ClassBalanced(Labels, 0, 0));
    }

    [Fact]
    public void ClassesWithoutItemsAreNeverDrawn()
    {
        int[] labels = [0, 0, 2, 2, 2];
        foreach (var name in new[] { "balanced", "sqrt", "reverse", "class-aware" })
            Assert.DoesNotContain(Samplers.Create(name, labels, 1, 500).Indices(0), i => labels[i] == 1);
    }
}
