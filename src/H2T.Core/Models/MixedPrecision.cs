using H2T.Runtime;
using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Models;


/// <summary>
/// Mixed precision without autocast (TorchSharp 0.107 has none): a bf16 backbone casts its input to bf16 at the
/// stem, and every convolution then runs in bf16 on a bf16 copy of its fp32 master weight, made per call, so
/// autograd carries the gradient back to the fp32 master. BatchNorm runs on the bf16 activations with fp32 weights
/// and fp32 running statistics (libtorch's mixed-type batch norm), and the final feature map is cast back to fp32:
/// pooling, H2T's fusion, the classifier, softmax, losses, margins and metrics all stay fp32. bf16 keeps fp32's
/// exponent range, so no loss scaling is needed.
/// </summary>
public static class MixedPrecision
{
    /// <summary>What the option means, for the CLI's help.</summary>
    public const string Help =
        "backbone arithmetic: fp32, bf16 (mixed precision: bf16 convolutions, fp32 weights, BatchNorm statistics, " +
        "losses and metrics) or auto (bf16 where it was measured faster: by `h2t info --calibrate` on this CPU, else " +
        "on this kind of CPU: AMX, or AMD Zen 5; `h2t info` says which)";

    public static string Name(ComputePrecision p) => ComputeNames.Name(p);

    /// <summary>A name from <see cref="ComputeNames.Precisions"/>, "auto" resolved for <paramref name="cpu"/> (the host
    /// by default).</summary>
    public static ComputePrecision Parse(string name,
        CpuFeatures? cpu = null) => ComputeNames.Precisions.Parse(name) ?? Auto(cpu);

    /// <summary>What "auto" means on a CPU: bf16 only where it was measured faster than fp32 (<see
    /// cref="AutoReason"/>).</summary>
    public static ComputePrecision Auto(CpuFeatures? cpu = null) => Rule(cpu ?? CpuFeatures.Host).Precision;

    /// <summary>Why <see cref="Auto"/> picks what it picks on this CPU, with the measurement behind it.</summary>
    public static string AutoReason(CpuFeatures? cpu = null) => Rule(cpu ?? CpuFeatures.Host).Why;

    // A calibration of this very CPU by this build (h2t info --calibrate) comes first; then the rule, by CPU kind, from
    // the measurements in docs/performance.md ("What --precision auto picks"): AMX, Intel without AMX and AMD Zen 5
    // from
    // H2T.Bench --only precision (ResNet-32, CIFAR-10-LT, 2 threads). A kind nobody measured keeps fp32.
    // The numbers live in the docs, with the machines and commands behind them; the strings only point there.
    internal const string Measurements = "docs/precision.md, \"What `auto` picks\"";

    static (ComputePrecision Precision, string Why) Rule(CpuFeatures c) =>
        PrecisionCalibration.For(c) is { } calibrated ? (calibrated.Choice, calibrated.Why)
        : c.AmxBf16 ? (ComputePrecision.Bf16, $"AMX (amx_bf16): bf16 measured faster than fp32 ({Measurements})")
        : c.AmdGeneration is "Zen 5" ? (ComputePrecision.Bf16,
            $"AMD Zen 5 (family 26, avx512_bf16): bf16 measured faster than fp32 ({Measurements})")
        : c.AmdGeneration is { } amd ? (ComputePrecision.Fp32,
            $"AMD {amd} with avx512_bf16: not measured yet, fp32 kept; h2t info --calibrate measures this CPU")
        : c.Avx512Bf16 ? (ComputePrecision.Fp32,
            $"Intel avx512_bf16 without AMX: bf16 measured slower than fp32 ({Measurements})")
        : (ComputePrecision.Fp32, "no bf16 units: bf16 would be emulated, slower than fp32");

    /// <summary>A note for the run log when bf16 was asked for on a CPU where the rule behind <see cref="Auto"/> says
    /// fp32 is faster (no bf16 units, or Intel's avx512_bf16 without AMX), else null.</summary>
    public static string? Warning(ComputePrecision p, CpuFeatures? cpu = null)
    {
        var c = cpu ?? CpuFeatures.Host;
        var (fastest, why) = Rule(c);
        return p == ComputePrecision.Bf16 && fastest == ComputePrecision.Fp32 ?
            $"precision bf16, as asked, on {c.Model}; auto would pick fp32 here: {why}" : null;
    }

    /// <summary>A convolution in the input's precision: as the module does in fp32, on a bf16 copy of the weight for a
    /// bf16 input.</summary>
    public static Tensor Conv(Conv2d conv, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(conv);
        ArgumentNullException.ThrowIfNull(x);
        var pointwise = Pointwise.Applies(conv);
        if (x.dtype != ScalarType.BFloat16)
            return pointwise ? Pointwise.Conv(x, conv.weight!, conv.bias, conv.stride[0]) : conv.call(x);
        using var scope = NewDisposeScope();
        var w = conv.weight!.to(ScalarType.BFloat16);
        var b = conv.bias?.to(ScalarType.BFloat16);
        return (pointwise ? Pointwise.Conv(x, w, b, conv.stride[0])
            : nn.functional.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation,
                conv.groups)).MoveToOuterDisposeScope();
    }
}
