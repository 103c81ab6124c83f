using H2T.Fusion;
using H2T.Runtime;
using static TorchSharp.torch;

namespace H2T.Tests.Fusion;

public sealed class HeadToTailFusionTests
{
    public HeadToTailFusionTests() => TorchRuntime.Initialize(2);

    [Theory]
    [InlineData(0.0, 64, 0)]
    [InlineData(0.25, 64, 16)]
    [InlineData(0.3, 64, 19)]
    [InlineData(0.29, 100, 28)] // the double product is 28.999...: floor as the reference's int()
    [InlineData(0.5, 7, 3)]
    [InlineData(1.0, 64, 64)]
    public void TakesExactlyFloorRhoTimesCChannelsFromTheHeadBitForBit(double rho, int c, int expected)
    {
        using var scope = NewDisposeScope();
        var fusion = new HeadToTailFusion(rho);
        Assert.Equal(expected, fusion.HeadChannelCount(c));
        var tail = randn(3, c, 4, 4);
        var head = randn(3, c, 4, 4);
        var (fused, channels) = fusion.Fuse(tail, head, new Random(1));
        Assert.Equal(expected, channels.Length);
        Assert.Equal(channels.Length, channels.Distinct().Count());
        var set = channels.ToHashSet();
        var f = fused.data<float>().ToArray();
        var t = tail.data<float>().ToArray();
        var h = head.data<float>().ToArray();
        int plane = 16;
        for (int n = 0; n < 3; n++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < plane; i++)
                {
                    int at = (n * c + ch) * plane + i;
                    var want = set.Contains(ch) ? h[at] : t[at];
                    Assert.Equal(BitConverter.SingleToInt32Bits(want), BitConverter.SingleToInt32Bits(f[at]));
                }
    }

    [Fact]
    public void RhoZeroIsTheTailAndRhoOneTheHead()
    {
        using var scope = NewDisposeScope();
        var tail = randn(2, 8, 3, 3);
        var head = randn(2, 8, 3, 3);
        Assert.True(new HeadToTailFusion(0).Fuse(tail, head, new Random(0)).Fused.eq(tail).all().item<bool>());
        Assert.True(new HeadToTailFusion(1).Fuse(tail, head, new Random(0)).Fused.eq(head).all().item<bool>());
    }

    [Fact]
    public void SameSeedSameChannelsAndTheDrawIsUniform()
    {
        var fusion = new HeadToTailFusion(0.25);
        Assert.Equal(fusion.DrawChannels(64, new Random(7)), fusion.DrawChannels(64, new Random(7)));
        // Each channel should be picked with probability k/C: chi-square over 64 channels, 4000 draws.
        var rng = new Random(3);
        var counts = new int[64];
        const int draws = 4000;
        for (int i = 0; i < draws; i++) foreach (var ch in fusion.DrawChannels(64, rng)) counts[ch]++;
        double expected = draws * 16 / 64.0;
        double chi2 = counts.Sum(o => (o - expected) * (o - expected) / expected);
        Assert.True(chi2 < 110, $"chi-square {chi2:F1} over 63 degrees of freedom (p < 0.001 threshold ~ 103-110)");
    }

    [Fact]
    public void GradientFlowsToTheFusedFeaturesButTheLabelIsTheTails()
    {
        using var scope = NewDisposeScope();
        var tail = randn(4, 8, 2, 2, requires_grad: true);
        var head = randn(4, 8, 2, 2, requires_grad: true);
        var fused = HeadToTailFusion.Fuse(tail, head, [1, 5]);
        fused.sum().backward();
        var gt = tail.grad!.sum([0L, 2L, 3L]).data<float>().ToArray();
        var gh = head.grad!.sum([0L, 2L, 3L]).data<float>().ToArray();
        for (int c = 0; c < 8; c++)
        {
            bool fromHead = c is 1 or 5;
            Assert.Equal(fromHead ? 0f : 16f, gt[c]);
            Assert.Equal(fromHead ? 16f : 0f, gh[c]);
        }
    }

    [Fact]
    public void EachExpertGetsItsOwnDraw()
    {
        using var scope = NewDisposeScope();
        var fusion = new HeadToTailFusion(0.25);
        var tails = Enumerable.Range(0, 3).Select(_ => randn(2, 64, 2, 2)).ToArray();
        var heads = Enumerable.Range(0, 3).Select(_ => randn(2, 64, 2, 2)).ToArray();
        var (fused, channels) = fusion.FuseExperts(tails, heads, new Random(11));
        Assert.Equal(3, fused.Length);
        Assert.All(channels, c => Assert.Equal(16, c.Length));
        Assert.NotEqual(channels[0], channels[1]);
        for (int e = 0; e < 3; e++)
            Assert.True(fused[e].eq(HeadToTailFusion.Fuse(tails[e], heads[e], channels[e])).all().item<bool>());
        // The same generator sequence as three single-map fusions in expert order.
        var rng = new Random(11);
        Assert.Equal(channels[0], fusion.DrawChannels(64, rng));
        Assert.Equal(channels[1], fusion.DrawChannels(64, rng));
    }

    [Fact]
    public void BadInputsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new HeadToTailFusion(1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HeadToTailFusion(double.NaN));
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => HeadToTailFusion.Fuse(randn(4, 8, 2, 2), randn(3, 8, 2, 2),
            [0]));
        Assert.Contains("equal shapes", e.Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => HeadToTailFusion.Fuse(randn(1, 4, 1, 1),
            randn(1, 4, 1, 1), [1, 1, 2, 3])).Message);
    }
}
