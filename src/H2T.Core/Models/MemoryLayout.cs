using static TorchSharp.torch;

namespace H2T.Models;

/// <summary>
/// Channels-last feature maps: the N x C x H x W shape with N x H x W x C strides. oneDNN's convolutions and
/// batch norms run faster on it than on NCHW (docs/performance.md: ResNet-32 here took 0.85x the NCHW time per
/// training step and 0.73x per frozen forward). Only the activations change layout; parameters stay
/// NCHW-contiguous, so checkpoints, optimizer state and PyTorch exports are untouched. A run chooses it with
/// <c>memory_layout</c> (Settings.FeatureLayout); each <see cref="Backbone"/> carries it.
/// </summary>
public static class MemoryLayout
{
    /// <summary>How logs and <c>h2t info</c> name a layout.</summary>
    public static string Name(bool channelsLast) => channelsLast ? "channels-last" : "NCHW";

    /// <summary>True when a 4-D tensor already has channels-last strides.</summary>
    public static bool IsChannelsLast(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4) return false;
        var n = x.shape;
        var s = x.stride();
        long c = n[1], h = n[2], w = n[3];
        return s[1] == 1 && s[3] == c && s[2] == w * c && (n[0] == 1 || s[0] == h * w * c);
    }

    /// <summary>
    /// <paramref name="x"/> with channels-last strides: the tensor itself if it has them (or is not 4-D), else a copy
    /// registered on the current dispose scope.
    /// </summary>
    public static Tensor ToChannelsLast(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4 || IsChannelsLast(x)) return x;
        using var scope = NewDisposeScope();
        return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }
}
