using H2T.Settings;
using H2T.Models;
using H2T.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

/// <summary>
/// Channels-last feature maps and the in-place ReLU / residual add are speed choices only: these tests require the
/// same values and gradients as NCHW and as an out-of-place reference written here with plain functional ops.
/// </summary>
public sealed class MemoryLayoutTests
{
    public MemoryLayoutTests() => TorchRuntime.Initialize(2);

    [Fact]
    public void ToChannelsLastKeepsValuesAndChangesOnlyStrides()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 4, 5);
        Assert.False(MemoryLayout.IsChannelsLast(x));
        var y = MemoryLayout.ToChannelsLast(x);
        Assert.True(MemoryLayout.IsChannelsLast(y));
        Assert.Equal(new long[] { 60, 1, 15, 3 }, y.stride());
        Assert.Equal(x.shape, y.shape);
        Assert.True((x == y).all().item<bool>());
        Assert.Same(y, MemoryLayout.ToChannelsLast(y));
        var flat = randn(4, 6);
        Assert.Same(flat, MemoryLayout.ToChannelsLast(flat));
    }

    [Theory]
    [InlineData("resnet8", 1, 28)]
    [InlineData("resnet20", 3, 32)]
    [InlineData("ride_resnet8", 3, 32)]
    [InlineData("reslt_resnet8", 3, 32)]
    [InlineData("resnet10", 3, 64)]
    [InlineData("resnet50", 3, 96)]
    public void ChannelsLastGivesTheNchwOutputsAndGradients(string name, int channels, int size)
    {
        // Both layouts against the same network in float64. A wrong layout, or a corrupted in-place op, is off by
        // O(1); rounding is not. See AssertAsClose for how far channels-last rounding goes.
        manual_seed(5);
        using var nchw = ModelFactory.CreateBackbone(name, channels, new(Layout: FeatureLayout.Nchw));
        using var last = ModelFactory.CreateBackbone(name, channels, new(Layout: FeatureLayout.ChannelsLast));
        using var exact = ModelFactory.CreateBackbone(name, channels, new(Layout: FeatureLayout.Nchw));
        last.load_state_dict(nchw.state_dict());
        exact.load_state_dict(nchw.state_dict());
        exact.to(ScalarType.Float64);
        using var scope = NewDisposeScope();
        var x = randn(6, channels, size, size);
        var w = randn(nchw.FeatureChannels);
        var maps = new List<Tensor>();
        foreach (var net in new[] { nchw, last, exact })
        {
            net.train();
            var dtype = net == exact ? ScalarType.Float64 : ScalarType.Float32;
            var map = net.call(x.to_type(dtype));
            (map.mean([0, 2, 3]) * w.to_type(dtype)).sum().backward();
            maps.Add(map);
        }
        Assert.False(MemoryLayout.IsChannelsLast(maps[0]));
        Assert.True(MemoryLayout.IsChannelsLast(maps[1]), "every map after the input stays channels-last");
        AssertAsClose(maps[0], maps[1], maps[2], "feature map", 1e-4);
        var grads = new[] { nchw, last, exact }.Select(n => n.named_parameters().ToDictionary(p => p.name,
            p => p.parameter.grad!)).ToArray();
        foreach (var (pn, _) in nchw.named_parameters())
            AssertAsClose(grads[0][pn], grads[1][pn], grads[2][pn], $"gradient of {pn}", 2e-2);
        // The running statistics moved the same way.
        var buffers = new[] { nchw, last, exact }.Select(n => n.named_buffers().ToDictionary(b => b.name,
            b => b.buffer)).ToArray();
        foreach (var bn in buffers[0].Keys.Where(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
            AssertAsClose(buffers[0][bn], buffers[1][bn], buffers[2][bn], bn, 1e-4);
    }

    /// <summary>
    /// The channels-last result lies within <paramref name="relative"/> of the float64 one (relative to its norm), or
    /// within 10 times NCHW's own error where that is larger (ill-conditioned cases, e.g. ResNet-50's train-mode
    /// BatchNorm in layer4 at 64 x 64 input, where NCHW itself was off by 0.6%; the test uses 96 x 96).
    /// Feature maps and running statistics hold 1e-4. Gradients get 2e-2: libtorch's channels-last kernels are less
    /// accurate in backward, and the error grows towards the input. Measured for ResNet-20 at batch 16: 1e-4 in
    /// layer3 and about 1% at conv1, against 2e-6 for NCHW. Its own tests show that is the kernels and not our
    /// in-place ops (<see cref="InPlaceBlocksMatchAnOutOfPlaceFunctionalResNet"/> agrees to 1e-5 in either layout).
    /// </summary>
    static void AssertAsClose(Tensor nchw, Tensor channelsLast, Tensor exact, string what, double relative)
    {
        using var scope = NewDisposeScope();
        double Err(Tensor t) => (t.to_type(ScalarType.Float64) - exact).norm().item<double>();
        double size = exact.norm().item<double>(), reference = Err(nchw), ours = Err(channelsLast);
        if (ours > Math.Max(10 * reference, relative * size) + 1e-7)
            Assert.Fail(
                $"{what}: channels-last error {ours:G3}, NCHW error {reference:G3}, against a float64 norm of " +
                    $"{size:G3}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InPlaceBlocksMatchAnOutOfPlaceFunctionalResNet(bool channelsLast)
    {
        // ResNet-8 written out with functional ops and no in-place op, on the module's own weights: the module's
        // in-place ReLU and residual add must leave both the forward values and autograd's gradients intact.
        manual_seed(7);
        using var net = new ResNetCifar(8,
            3) { Compute = new(Layout: channelsLast ? FeatureLayout.ChannelsLast : FeatureLayout.Nchw) };
        net.train();
        using var scope = NewDisposeScope();
        var x = randn(16, 3, 32, 32);
        var w = randn(64);
        var p = net.named_parameters().ToDictionary(t => t.name, t => t.parameter);
        var reference = p.ToDictionary(t => t.Key, t => t.Value.detach().clone().requires_grad_(true));

        Tensor Bn(Tensor v, string prefix) => nn.functional.batch_norm(v, null, null, reference[prefix + ".weight"],
            reference[prefix + ".bias"], training: true);
        Tensor Conv(Tensor v, string name, long stride) => nn.functional.conv2d(v, reference[name + ".weight"], null,
            strides: [stride, stride], padding: [1, 1]);
        Tensor Block(Tensor v, string prefix, long stride, int pad)
        {
            var y = nn.functional.relu(Bn(Conv(v, prefix + ".conv1", stride), prefix + ".bn1"));
            y = Bn(Conv(y, prefix + ".conv2", 1), prefix + ".bn2");
            var s = pad > 0 ? nn.functional.pad(v[.., .., TensorIndex.Slice(null, null, stride), TensorIndex.Slice(null,
                null, stride)], [0, 0, 0, 0, pad, pad]) : v;
            return nn.functional.relu(y + s);
        }
        // The reference computes in the same layout as the module (libtorch follows the input's strides), so the
        // comparison isolates the in-place ops from the layout's own rounding.
        var r = nn.functional.relu(Bn(Conv(channelsLast ? MemoryLayout.ToChannelsLast(x) : x, "conv1", 1), "bn1"));
        r = Block(r, "layer1.0", 1, 0);
        r = Block(r, "layer2.0", 2, 8);
        r = Block(r, "layer3.0", 2, 16);

        var m = net.call(x);
        AssertClose(r, m, 1e-5, "feature map");
        (r.mean([0, 2, 3]) * w).sum().backward();
        (m.mean([0, 2, 3]) * w).sum().backward();
        foreach (var (name, param) in p) AssertClose(reference[name].grad!, param.grad!, 1e-5, $"gradient of {name}");
    }

    [Fact]
    public void TheFoldedCopyKeepsTheLayoutAndTheValues()
    {
        manual_seed(9);
        using var net = new ResNetCifar(8, 3) { Compute = new(Layout: FeatureLayout.ChannelsLast) };
        net.eval();
        using var scope = NewDisposeScope();
        using var g = no_grad();
        var x = randn(3, 3, 32, 32);
        var expected = net.call(x);
        using var folded = net.FoldedForInference()!;
        Assert.True(folded.ChannelsLast);
        var actual = folded.call(x);
        Assert.True(MemoryLayout.IsChannelsLast(actual));
        AssertClose(expected, actual, 1e-4, "folded map");
    }

    /// <summary>Relative to the tensor's size: ||actual - expected|| &lt;= tol * ||expected|| (+ tol for all-zero
    /// ones).
    /// Sums over a batch and a map (weight gradients) carry rounding in proportion to their magnitude.</summary>
    static void AssertClose(Tensor expected, Tensor actual, double tol, string what)
    {
        using var scope = NewDisposeScope();
        var e = expected.to_type(ScalarType.Float64);
        double diff = (actual.to_type(ScalarType.Float64) - e).norm().item<double>(), size = e.norm().item<double>();
        if (diff > tol * size + tol)
            Assert.Fail($"{what}: ||diff|| {diff:G3} against ||expected|| {size:G3}");
    }
}
