using H2T.Models;
using H2T.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

public sealed class ResNetTests
{
    public ResNetTests() => TorchRuntime.Initialize(2);

    [Fact]
    public void ResNet32MatchesTheReferenceParameterCountAndKeys()
    {
        using var backbone = new ResNetCifar(32, 3);
        using var head = new LinearHead(backbone.FeatureChannels, 10);
        long parameters = backbone.parameters().Concat(head.parameters()).Sum(p => p.numel());
        Assert.Equal(464_154, parameters);

        var keys = backbone.state_dict().Keys.ToList();
        Assert.Equal(186, keys.Count);
        Assert.Equal("conv1.weight", keys[0]);
        Assert.Contains("bn1.num_batches_tracked", keys);
        Assert.Contains("layer3.4.bn2.running_var", keys);
        Assert.Contains("layer2.0.conv1.weight", keys);
        Assert.Equal(["fc.weight", "fc.bias"], head.state_dict().Keys.ToArray());
    }

    [Theory]
    [InlineData(3, 32, 8)]
    [InlineData(1, 28, 7)]
    public void ResNet32ReturnsTheFeatureMapBeforePooling(int channels, int size, int mapSize)
    {
        using var scope = NewDisposeScope();
        using var backbone = new ResNetCifar(32, channels);
        backbone.eval();
        var map = backbone.call(randn(2, channels, size, size));
        Assert.Equal(new long[] { 2, 64, mapSize, mapSize }, map.shape);
    }

    [Fact]
    public void OptionAShortcutHasNoParametersAndZeroPadsChannels()
    {
        using var backbone = new ResNetCifar(20, 3);
        Assert.DoesNotContain(backbone.state_dict().Keys, k => k.Contains("shortcut") || k.Contains("downsample"));
    }

    [Theory]
    [InlineData("resnet10", 512)]
    [InlineData("resnext50", 2048)]
    public void ImageNetBackbonesGiveStageFourMaps(string name, int channels)
    {
        using var scope = NewDisposeScope();
        using var backbone = ModelFactory.CreateBackbone(name, 3);
        backbone.eval();
        Assert.Equal(channels, backbone.FeatureChannels);
        var map = backbone.call(randn(1, 3, 64, 64));
        Assert.Equal(new long[] { 1, channels, 2, 2 }, map.shape);
        Assert.Contains("layer4.0.downsample.0.weight", backbone.state_dict().Keys);
    }

    [Fact]
    public void ResNet50HasTorchvisionParameterCount()
    {
        using var backbone = ModelFactory.CreateBackbone("resnet50", 3);
        using var head = new LinearHead(backbone.FeatureChannels, 1000);
        Assert.Equal(25_557_032, backbone.parameters().Concat(head.parameters()).Sum(p => p.numel()));
    }

    [Fact]
    public void HeadsPoolAndClassify()
    {
        using var scope = NewDisposeScope();
        var map = randn(4, 64, 8, 8);
        foreach (var kind in ModelFactory.HeadNames)
        {
            using var head = ModelFactory.CreateHead(kind, 64, 10, experts: kind is "ride" or "reslt" ? 2 : 1);
            Assert.Equal(new long[] { 4, 10 }, head.call(map).shape);
        }
        using var cosine = new CosineHead(64, 10);
        Assert.True(cosine.call(map).abs().max().item<float>() <= 1.0001f, "cosine logits lie in [-1, 1]");
    }

    [Fact]
    public void LwsTrainsOnlyTheScales()
    {
        using var lin = new LinearHead(8, 3);
        using var lws = new LwsHead(8, 3);
        lws.LoadFrom(lin);
        Assert.Single(lws.TrainableParameters());
        using var scope = NewDisposeScope();
        var x = randn(5, 8);
        Assert.True(lws.Logits(x).allclose(lin.Logits(x)), "unit scales reproduce the source classifier");
    }

    [Fact]
    public void UnknownNamesAreRejectedWithTheChoices()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelFactory.CreateBackbone("vgg", 3));
        Assert.Contains("resnet32", e.Message);
    }

    [Theory]
    [InlineData("resnet8", 1, 28)]
    [InlineData("resnet20", 3, 32)]
    [InlineData("resnet10", 3, 64)]          // ImageNet basic blocks, 7x7 stem, max-pool, 1x1 downsample
    [InlineData("resnet50", 3, 64)]          // bottlenecks
    [InlineData("resnext50_32x4d", 3, 64)]   // grouped 3x3 convolutions
    public void FoldedBatchNormGivesTheEvalModeOutputsAndLeaksNothing(string arch, int channels, int size)
    {
        manual_seed(3);
        using var backbone = ModelFactory.CreateBackbone(arch, channels);
        // Train-mode passes move every running mean and variance away from 0 / 1, and give BN non-trivial affines.
        using (var _ = no_grad())
        {
            foreach (var (_, p) in backbone.named_parameters()) if (p.dim() == 1) p.add_(rand_like(p) - 0.5);
            backbone.train();
            for (int i = 0; i < 3; i++) backbone.call(randn(16, channels, size, size) * 2 + 1).Dispose();
        }
        backbone.eval();
        using var x = randn(8, channels, size, size);
        using var g = no_grad();
        using var expected = backbone.call(x);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using (var folded = backbone.FoldedForInference()!)
        {
            using var actual = folded.call(x);
            if (!allclose(actual, expected, rtol: 1e-4, atol: 1e-4))
                Assert.Fail($"max |diff| {(actual - expected).abs().max().item<float>()}");
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
