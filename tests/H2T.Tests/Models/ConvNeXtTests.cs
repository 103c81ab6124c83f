using H2T.Interop;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Interop;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

/// <summary>
/// ConvNeXt against torchvision 0.14 itself (make_convnext_fixtures.py): its state dicts load by name, and our maps,
/// pre-logits and logits are torchvision's on two real images, in both memory layouts; the micro CI network trains
/// and runs in bf16.
/// </summary>
public sealed class ConvNeXtTests(ITestOutputHelper output)
{
    static ConvNeXtTests() => TorchRuntime.Initialize(2);

    static double Relative(Tensor got, Tensor want)
    {
        using var scope = NewDisposeScope();
        return (got - want).abs().max().item<float>() / want.abs().max().item<float>();
    }

    [RequiresPyTorchTheory]
    [InlineData("convnext_tiny", FeatureLayout.ChannelsLast)]
    [InlineData("convnext_tiny", FeatureLayout.Nchw)]
    [InlineData("convnext_micro", FeatureLayout.ChannelsLast)]
    [InlineData("convnext_micro", FeatureLayout.Nchw)]
    public void TorchvisionsStateDictGivesItsMapsPreLogitsAndLogits(string arch, FeatureLayout layout)
    {
        var dir = PyTorchFixtures.ConvNeXtFolder();
        var file = Path.Combine(dir, $"{arch}.pth");
        using var backbone = (ConvNeXt)ModelFactory.CreateBackbone(arch, 3, new BackboneCompute(Layout: layout));
        var lines = PretrainedBackbone.Load(file, backbone, 1000);
        Assert.Contains(lines, l => l == $"pretrained backbone: {backbone.state_dict().Count} tensor(s) loaded");
        Assert.Contains(lines, l => l.Contains($"its fc is [1000, {backbone.FeatureChannels}]",
            StringComparison.Ordinal));
        using var head = new LinearHead(backbone.FeatureChannels, 1000);
        using (var weights = PyTorchWeights.Read(file))
        using (no_grad())
        {
            head.Fc.weight!.copy_(weights.Classifier["fc.weight"]);
            head.Fc.bias!.copy_(weights.Classifier["fc.bias"]);
        }

        var io = TorchSaveReader.ReadDict(Path.Combine(dir, $"{arch}_io.pth"));
        using var scope = NewDisposeScope();
        var input = (Tensor)io["input"]!;
        backbone.eval();
        using var _ = no_grad();
        var features = backbone.ForwardFeatures(input);
        var map = backbone.call(input);
        var pooled = ClassifierHead.Pool(map);
        var logits = head.call(map);
        double f = Relative(features, (Tensor)io["features"]!), p = Relative(pooled, (Tensor)io["pre_logits"]!),
            l = Relative(logits, (Tensor)io["logits"]!);
        output.WriteLine($"{arch} {layout}: max relative difference features {f:G3}, pre-logits {p:G3}, " +
            $"logits {l:G3}");
        Assert.True(f <= 1e-5 && p <= 1e-5 && l <= 1e-5, $"features {f:G3}, pre-logits {p:G3}, logits {l:G3}");
        Assert.Equal(((Tensor)io["drop"]!).data<double>().ToArray(), backbone.BlockDropProbabilities.ToArray(),
            new ToleranceComparer(1e-12));
    }

    sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }

    [Fact]
    public void TinyHasTorchvisionsParameterCountAndNames()
    {
        using var backbone = ModelFactory.CreateBackbone("convnext_tiny", 3);
        using var head = new LinearHead(backbone.FeatureChannels, 1000);
        // torchvision's ConvNeXt_Tiny_Weights.IMAGENET1K_V1.meta["num_params"]
        Assert.Equal(28_589_128, backbone.parameters().Concat(head.parameters()).Sum(p => p.numel()));
        var keys = backbone.state_dict().Keys.ToList();
        Assert.Equal("features.0.0.weight", keys[0]);
        foreach (var k in new[] { "features.0.1.bias", "features.1.0.block.0.weight", "features.1.0.block.2.weight",
            "features.1.0.block.3.weight", "features.1.0.block.5.bias", "features.1.0.layer_scale",
            "features.2.0.weight", "features.2.1.weight", "features.5.8.layer_scale", "features.7.2.block.5.weight",
            "classifier.0.weight", "classifier.0.bias" })
            Assert.Contains(k, keys);
        Assert.Equal(0.1, ((ConvNeXt)backbone).StochasticDepth);
        // torchvision's init: weights N(0, 0.02) (truncated at +-2), biases 0, layer_scale 1e-6.
        var state = backbone.state_dict();
        using var std = state["features.5.3.block.3.weight"].std();
        Assert.InRange(std.item<float>(), 0.0195f, 0.0205f);
        using var bias = state["features.5.3.block.3.bias"].abs().max();
        Assert.Equal(0f, bias.item<float>());
        using var scale = state["features.7.0.layer_scale"].max();
        Assert.Equal(1e-6f, scale.item<float>());
        Assert.Equal(0.5, ConvNeXt.DefaultStochasticDepth("convnext_base"));
    }

    [Fact]
    public void TheMapPoolsToTheNormOfThePooledFeaturesNotToThePerPositionNorm()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var backbone = (ConvNeXt)ModelFactory.CreateBackbone("convnext_micro", 3);
        backbone.eval();
        using var _ = no_grad();
        var x = randn(3, 3, 64, 64);
        var raw = backbone.ForwardFeatures(x);
        Assert.Equal(new long[] { 3, 128, 2, 2 }, raw.shape);
        var pooled = raw.mean([2L, 3L]);
        var want = nn.functional.layer_norm(pooled, [128], null, null, 1e-6);
        var got = ClassifierHead.Pool(backbone.call(x));
        double r = Relative(got, want);
        output.WriteLine($"pooled map vs LayerNorm of the pooled features: {r:G3} (features' std " +
            $"{raw.std().item<float>():G3})");
        Assert.True(r < 1e-5, $"{r:G3}");
        // A LayerNorm at every position, then pooling, is another thing: the design must not be that.
        var perPosition = nn.functional.layer_norm(raw.permute(0, 2, 3, 1), [128], null, null, 1e-6).mean([1L, 2L]);
        Assert.True(Relative(perPosition, want) > 1e-3);
    }

    [Fact]
    public void StochasticDepthDropsOnlyInTrainingAndCanBeSet()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var backbone = (ConvNeXt)ModelFactory.CreateBackbone("convnext_micro", 3);
        Assert.Equal(0.0, backbone.StochasticDepth);
        backbone.StochasticDepth = 0.9;
        Assert.Equal([0, 0.3, 0.6, 0.9], backbone.BlockDropProbabilities, new ToleranceComparer(1e-12));
        Assert.Throws<ArgumentOutOfRangeException>(() => backbone.StochasticDepth = 1.5);
        var x = randn(16, 3, 32, 32);
        using var _ = no_grad();
        backbone.eval();
        Assert.True(backbone.call(x).equal(backbone.call(x)).all().item<bool>());
        backbone.train();
        Assert.False(backbone.call(x).equal(backbone.call(x)).all().item<bool>());
    }

    [Fact]
    public void MicroTrainsAndRunsInBf16()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var backbone = ModelFactory.CreateBackbone("convnext_micro", 3);
        using var head = new LinearHead(backbone.FeatureChannels, 4);
        var x = randn(16, 3, 32, 32);
        var y = randint(0, 4, [16], dtype: ScalarType.Int64);
        using var sgd = optim.SGD(backbone.parameters().Concat(head.parameters()), 0.01);
        backbone.train();
        var losses = new List<float>();
        for (int step = 0; step < 6; step++)
        {
            using var stepScope = NewDisposeScope();
            sgd.zero_grad();
            var loss = nn.functional.cross_entropy(head.call(backbone.call(x)), y);
            loss.backward();
            sgd.step();
            losses.Add(loss.item<float>());
        }
        output.WriteLine($"micro losses: {string.Join(", ", losses.Select(v => v.ToString("F4",
            System.Globalization.CultureInfo.InvariantCulture)))}");
        Assert.True(losses[^1] < losses[0], $"loss did not decrease: {string.Join(", ", losses)}");

        using var bf16 = ModelFactory.CreateBackbone("convnext_micro", 3, new BackboneCompute(ComputePrecision.Bf16));
        bf16.load_state_dict(backbone.state_dict());
        bf16.eval();
        backbone.eval();
        Tensor want, got;
        using (no_grad())
        {
            want = backbone.call(x);
            got = bf16.call(x);
        }
        Assert.Equal(ScalarType.Float32, got.dtype);
        double r = Relative(got, want);
        output.WriteLine($"bf16 vs fp32 map: max relative difference {r:G3}");
        Assert.True(r < 0.05, $"bf16 map differs from fp32's by {r:G3}");
        bf16.train();
        var bfLoss = nn.functional.cross_entropy(head.call(bf16.call(x)), y);
        bfLoss.backward();
        Assert.All(bf16.parameters(), p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
    }

    [Fact]
    public void StageTwoFusesTheMicroNetworksMaps()
    {
        using var runs = new TempDir();
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, text) = CliRunner.Run("stage1", "--dataset", "imagefolder", "--data", DataTestFiles.CifarJpgSample,
            "--imb-factor", "2", "--backbone", "convnext_micro", "--image-size", "32", "--epochs", "1",
            "--batch-size", "50", "--out", s1, "--threads", "2");
        Assert.True(rc == 0, text);
        var s2 = Path.Combine(runs.Path, "s2");
        (rc, text) = CliRunner.Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0.5", "--epochs", "1",
            "--batch-size", "50", "--out", s2);
        Assert.True(rc == 0, text);
        Assert.Contains("rho=0.5", text);
        Assert.True(new H2T.Runs.RunFolder(s2).ReadMetrics().Completed);
    }
}
