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
    public void ChannelsLastGivesTheNchwOutputsAndGradients(string name, int channels, int size)
    {
        // Both layouts against the same network in float64: channels-last may round differently from NCHW, but
        // not by more than NCHW itself differs from the exact result (a wrong layout would be off by O(1)).
        manual_seed(5);
        using var nchw = ModelFactory.CreateBackbone(name, channels);
        using var last = ModelFactory.CreateBackbone(name, channels);
        using var exact = ModelFactory.CreateBackbone(name, channels);
        last.load_state_dict(nchw.state_dict());
        exact.load_state_dict(nchw.state_dict());
        exact.to(ScalarType.Float64);
        nchw.ChannelsLast = false;
        last.ChannelsLast = true;
        exact.ChannelsLast = false;
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
        AssertAsClose(maps[0], maps[1], maps[2], "feature map");
        var grads = new[] { nchw, last, exact }.Select(n => n.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!)).ToArray();
        foreach (var (pn, _) in nchw.named_parameters())
        {
            AssertAsClose(grads[0][pn], grads[1][pn], grads[2][pn], $"gradient of {pn}");
            Assert.True(grads[1][pn].is_contiguous(), $"{pn}: parameters and their gradients stay NCHW-contiguous");
        }
        // The running statistics moved the same way.
        var buffers = new[] { nchw, last, exact }.Select(n => n.named_buffers().ToDictionary(b => b.name, b => b.buffer)).ToArray();
        foreach (var bn in buffers[0].Keys.Where(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
            AssertAsClose(buffers[0][bn], buffers[1][bn], buffers[2][bn], bn);
    }

    /// <summary>
    /// The channels-last result is about as close to the float64 one as the NCHW result is: within 4 times NCHW's
    /// error or 1e-4 of the value's norm (its kernels sum in another order; gradients here came within 3e-5).
    /// </summary>
    static void AssertAsClose(Tensor nchw, Tensor channelsLast, Tensor exact, string what)
    {
        using var scope = NewDisposeScope();
        double Err(Tensor t) => (t.to_type(ScalarType.Float64) - exact).norm().item<double>();
        double size = exact.norm().item<double>(), reference = Err(nchw), ours = Err(channelsLast);
        if (ours > Math.Max(4 * reference, 1e-4 * size) + 1e-7)
            Assert.Fail($"{what}: channels-last error {ours:G3}, NCHW error {reference:G3}, against a float64 norm of {size:G3}");
    }

    [Fact]
    public void InPlaceBlocksMatchAnOutOfPlaceFunctionalResNet()
    {
        // ResNet-8 written out with functional ops and no in-place op, on the module's own weights: the module's
        // in-place ReLU and residual add must leave both the forward values and autograd's gradients intact.
        manual_seed(7);
        using var net = new ResNetCifar(8, 3) { ChannelsLast = false };
        net.train();
        using var scope = NewDisposeScope();
        var x = randn(4, 3, 16, 16);
        var w = randn(64);
        var p = net.named_parameters().ToDictionary(t => t.name, t => t.parameter);
        var reference = p.ToDictionary(t => t.Key, t => t.Value.detach().clone().requires_grad_(true));

        Tensor Bn(Tensor v, string prefix) => nn.functional.batch_norm(v, null, null, reference[prefix + ".weight"], reference[prefix + ".bias"], training: true);
        Tensor Conv(Tensor v, string name, long stride) => nn.functional.conv2d(v, reference[name + ".weight"], null, strides: [stride, stride], padding: [1, 1]);
        Tensor Block(Tensor v, string prefix, long stride, int pad)
        {
            var y = nn.functional.relu(Bn(Conv(v, prefix + ".conv1", stride), prefix + ".bn1"));
            y = Bn(Conv(y, prefix + ".conv2", 1), prefix + ".bn2");
            var s = pad > 0 ? nn.functional.pad(v[.., .., TensorIndex.Slice(null, null, stride), TensorIndex.Slice(null, null, stride)], [0, 0, 0, 0, pad, pad]) : v;
            return nn.functional.relu(y + s);
        }
        var r = nn.functional.relu(Bn(Conv(x, "conv1", 1), "bn1"));
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
        using var net = new ResNetCifar(8, 3) { ChannelsLast = true };
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

    /// <summary>Relative to the tensor's size: ||actual - expected|| &lt;= tol * ||expected|| (+ tol for all-zero ones).
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
