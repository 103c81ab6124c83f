using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>
/// A convolution with the eval-mode BatchNorm after it folded in (W' = W * g / sqrt(v + eps), b' = beta - m * g /
/// sqrt(v + eps)): the same output, one pass less over the activation. The folded backbones own and dispose these.
/// </summary>
internal sealed record FoldedConv(Tensor Weight, Tensor Bias, long Stride, long Padding, long Groups) : IDisposable
{
    /// <summary>Folded in fp32, then stored in <paramref name="type"/> (the folded network's compute type). The
    /// stride, padding and groups are the convolution's, given by its builder.</summary>
    public static FoldedConv Of(Conv2d conv, BatchNorm2d bn, ScalarType type, long stride, long padding,
        long groups = 1)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentNullException.ThrowIfNull(bn);
        // 1e-5: BatchNorm2d's default eps, which every backbone here builds its norms with.
        var scale = bn.weight! / (bn.running_var! + 1e-5).sqrt();
        var weight = conv.weight!.mul(scale.view(-1, 1, 1, 1)).to(type).contiguous().DetachFromDisposeScope();
        var bias = (bn.bias! - bn.running_mean! * scale).to(type).contiguous().DetachFromDisposeScope();
        return new(weight, bias, stride, padding, groups);
    }

    public static ScalarType TypeFor(ComputePrecision precision) => precision == ComputePrecision.Bf16 ?
        ScalarType.BFloat16 : ScalarType.Float32;

    public Tensor Apply(Tensor x) => Pointwise.Applies(Weight, Padding, Groups)
        ? Pointwise.Conv(x, Weight, Bias, Stride)
        : functional.conv2d(x, Weight, Bias, strides: [Stride, Stride], padding: [Padding, Padding], groups: Groups);

    public void Dispose()
    {
        Weight.Dispose();
        Bias.Dispose();
    }
}
