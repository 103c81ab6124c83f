using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Models;

/// <summary>
/// A feature extractor that returns the final feature MAP (N x C x H x W), before global pooling: H2T fuses there.
/// Multi-expert backbones return one map per expert through <see cref="ForwardExperts"/>.
/// </summary>
public abstract class Backbone(string name) : nn.Module<Tensor, Tensor>(name)
{
    /// <summary>Channels of the final feature map (the classifier's input width).</summary>
    public abstract int FeatureChannels { get; }

    /// <summary>Registered architecture name (checkpoints record it and refuse a mismatch).</summary>
    public abstract string Architecture { get; }

    /// <summary>Number of experts (1 for single-branch backbones).</summary>
    public virtual int Experts => 1;

    /// <summary>The classifier kind a multi-expert backbone needs ("ride", "reslt"); null for single-branch ones.</summary>
    public virtual string? ExpertHeadKind => null;

    /// <summary>
    /// An eval-mode equivalent with BatchNorm folded into the convolutions, for evaluation passes; null when the
    /// architecture does not provide one. The caller disposes it.
    /// </summary>
    public virtual Backbone? FoldedForInference() => null;

    /// <summary>One feature map per expert: the output's channel groups (multi-expert backbones concatenate them).</summary>
    public IReadOnlyList<Tensor> ForwardExperts(Tensor input)
    {
        using var scope = NewDisposeScope();
        return call(input).chunk(Experts, 1).Select(t => t.contiguous().MoveToOuterDisposeScope()).ToArray();
    }
}
