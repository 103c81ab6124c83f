using H2T.Settings;

using static TorchSharp.torch;

namespace H2T.Models;

/// <summary>
/// A feature extractor that returns the final feature MAP (N x C x H x W), before global pooling: H2T fuses there.
/// Multi-expert backbones return one map per expert through <see cref="ForwardExperts"/>.
/// </summary>
public abstract partial class Backbone(string name) : nn.Module<Tensor, Tensor>(name)
{
    /// <summary>Channels of the final feature map (the classifier's input width).</summary>
    public abstract int FeatureChannels { get; }

    /// <summary>Registered architecture name (checkpoints record it and refuse a mismatch).</summary>
    public abstract string Architecture { get; }

    /// <summary>
    /// The arithmetic and the memory layout the backbone computes in, fixed when it is built: by the trainer from
    /// the run config, or by <see cref="H2T.Runs.Checkpoint.Open"/> from what the checkpoint recorded (or what its
    /// caller asked for). Nothing changes it afterwards.
    /// </summary>
    public BackboneCompute Compute { get; init; } = BackboneCompute.Default;

    /// <summary>
    /// Whether <c>forward</c> turns its input channels-last first, so every feature map after it is channels-last
    /// (<see cref="MemoryLayout"/>). The maps' values do not depend on it beyond float rounding.
    /// </summary>
    public bool ChannelsLast => Compute.ChannelsLast;

    /// <summary>
    /// The arithmetic of the forward pass (<see cref="MixedPrecision"/>): bf16 casts the input at the stem and
    /// the feature map back to fp32 at the end. Parameters and buffers stay fp32.
    /// </summary>
    public ComputePrecision Precision => Compute.Precision;

    /// <summary>
    /// The first convolution, applied in this backbone's layout; every layer after it keeps that layout. The
    /// output is put in the layout again because a one-channel input (Fashion-MNIST) is NCHW- and
    /// channels-last-contiguous at once, and libtorch then stays in NCHW (for more channels that is a no-op).
    /// </summary>
    protected Tensor Stem(Func<Tensor, Tensor> firstConvolution, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(firstConvolution);
        ArgumentNullException.ThrowIfNull(x);
        if (Precision == ComputePrecision.Bf16 && x.dtype != ScalarType.BFloat16) x = x.to(ScalarType.BFloat16);
        return ChannelsLast ? MemoryLayout.ToChannelsLast(firstConvolution(MemoryLayout.ToChannelsLast(x))) :
            firstConvolution(x);
    }

    /// <summary>The final feature map back in fp32 after a bf16 forward: everything after it stays fp32. (A network
    /// run in float64, as the layout tests do, stays float64.)</summary>
    protected static Tensor Output(Tensor map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return map.dtype == ScalarType.BFloat16 ? map.to(ScalarType.Float32) : map;
    }

    /// <summary>Number of experts (1 for single-branch backbones).</summary>
    public virtual int Experts => 1;

    /// <summary>The classifier kind a multi-expert backbone needs ("ride", "reslt"); null for single-branch
    /// ones.</summary>
    public virtual string? ExpertHeadKind => null;

    /// <summary>
    /// An eval-mode equivalent with BatchNorm folded into the convolutions, for evaluation passes; null when the
    /// architecture does not provide one. The caller disposes it.
    /// </summary>
    public Backbone? FoldedForInference() => TuningState is null ? Fold() : null;

    /// <summary>The architecture's BatchNorm-folded equivalent (<see cref="FoldedForInference"/>), built from the
    /// current weights; not asked while tuning modules that the fold would not see are attached.</summary>
    protected virtual Backbone? Fold() => null;

    /// <summary>
    /// Freezes every parameter outside the named modules (a name covers the module and everything under it, e.g.
    /// "layer4.2"): they get no gradient. Returns the number of parameters frozen. Fine-tuning only the top of a
    /// pretrained network, as MiSLAS and Decouple do on Places-LT, is this plus <see cref="TrainKeepingFrozenInEval"/>.
    /// </summary>
    public int FreezeAllBut(IReadOnlyList<string> trainable)
    {
        ArgumentNullException.ThrowIfNull(trainable);
        var unknown = trainable.Where(t => !named_modules().Any(m => m.name == t) && !named_parameters().Any(p =>
            p.name == t)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException(
                $"trainable: {string.Join(", ", unknown.Select(u => $"'{u}'"))} is not a module of {Architecture} " +
                $"(its top-level modules: {string.Join(", ", named_children().Select(c => c.name))})");
        int frozen = 0;
        foreach (var (name, p) in named_parameters())
            if (!Covers(trainable, name)) { p.requires_grad = false; frozen++; }
        return frozen;
    }

    /// <summary>Training mode, with every BatchNorm layer whose scale does not train kept in eval mode: its running
    /// statistics stay the pretrained ones (frozen stages, a frozen backbone, bias-only and SSF tuning). BatchNorm
    /// layers that train (the whole backbone, trainable stages, norm tuning) re-estimate them.</summary>
    public void TrainKeepingFrozenInEval()
    {
        train();
        foreach (var (_, m) in named_modules())
            if (m is TorchSharp.Modules.BatchNorm bn && bn.weight is { requires_grad: false }) m.eval();
    }

    static bool Covers(IReadOnlyList<string> trainable, string name) =>
        trainable.Any(t => name == t || name.StartsWith(t + ".", StringComparison.Ordinal));

    /// <summary>One feature map per expert: the output's channel groups (multi-expert backbones concatenate
    /// them).</summary>
    public IReadOnlyList<Tensor> ForwardExperts(Tensor input)
    {
        using var scope = NewDisposeScope();
        return call(input).chunk(Experts, 1).Select(t => t.contiguous().MoveToOuterDisposeScope()).ToArray();
    }
}

/// <summary>A backbone's arithmetic and memory layout (<see cref="Backbone.Compute"/>): channels-last fp32 unless a
/// run says otherwise.</summary>
public sealed record BackboneCompute(
    ComputePrecision Precision = ComputePrecision.Fp32, FeatureLayout Layout = FeatureLayout.ChannelsLast)
{
    /// <summary>fp32, channels-last: what a backbone computes in when nothing is asked.</summary>
    public static BackboneCompute Default { get; } = new();

    /// <summary>Whether the feature maps are channels-last.</summary>
    public bool ChannelsLast => Layout == FeatureLayout.ChannelsLast;
}
