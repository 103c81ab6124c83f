using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Fusion;

/// <summary>
/// Balanced-MixUp (Galdran et al., MICCAI 2021) moved to the frozen backbone's feature maps, as Manifold Mixup
/// (Verma et al., ICML 2019) moves mixup to hidden states: the instance-sampled (head-rich) and class-balanced
/// (tail-rich) maps of a paired batch are interpolated, F = lam F_head + (1 - lam) F_tail, with one
/// lam ~ Beta(alpha, 1) per batch, so a small alpha keeps lam near 0 and the batch mostly class-balanced. The target is
/// mixed the same way (the paper's), or with <c>mix_labels</c> off kept as the tail label (H2T's choice for its fused
/// maps).
/// H2T grafts whole channels; this blends every channel, the comparison the method seam exists for.
/// </summary>
public sealed class FeatureMixup(double alpha, bool mixLabels) : IStageTwoMethod
{
    public const string Paper =
        "Balanced-MixUp (Galdran et al., MICCAI 2021) on the feature maps: lam ~ Beta(alpha, 1), F = lam F_head + (1 " +
        "- lam) F_tail";

    public static IReadOnlyList<MethodOption> Options { get; } =
    [
        new("feature_mixup.alpha", "alpha of lam ~ Beta(alpha, 1), > 0 (default 0.2)"),
        new("feature_mixup.mix_labels", "mix the targets as the features (default true) or keep the tail label"),
    ];

    public double Alpha { get; } = alpha;
    public bool MixLabels { get; } = mixLabels;

    public bool UsesHeadSide => true;

    /// <summary>One blend of every value: linear, so pooling the blend is blending the pooled vectors.</summary>
    public bool CommutesWithPooling => true;

    /// <summary>From a config's method options; the defaults live here, the values are checked here.</summary>
    public static FeatureMixup From(IReadOnlyDictionary<string, string>? options)
    {
        return new FeatureMixup(MethodOptions.Number(options, "feature_mixup.alpha", 0.2, v => v > 0, "a number > 0"),
            MethodOptions.Switch(options, "feature_mixup.mix_labels", true));
    }

    /// <summary>One draw of Beta(alpha, 1): U^(1 / alpha).</summary>
    public double DrawHeadShare(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        return Math.Pow(1.0 - rng.NextDouble(), 1.0 / Alpha);
    }

    public AugmentedBatch Augment(Tensor tailMap, Tensor? headMap, Tensor tailLabels, Tensor? headLabels, Random rng,
        int experts)
    {
        ArgumentNullException.ThrowIfNull(tailMap);
        if (headMap is null ||
            headLabels is null) throw new ArgumentException("feature mixup needs the head-side batch");
        if (!tailMap.shape.SequenceEqual(headMap.shape))
            throw new ArgumentException(
                $"feature mixup needs equal shapes: tail [{string.Join(", ", tailMap.shape)}] vs head " +
                $"[{string.Join(", ", headMap.shape)}]");
        double lam = DrawHeadShare(rng);
        var mixed = headMap.mul(lam).add_(tailMap, alpha: 1 - lam);
        return MixLabels ? new AugmentedBatch(mixed, headLabels.alias(), lam) : new AugmentedBatch(mixed);
    }

    public override string ToString() => $"FeatureMixup(alpha={Alpha}, mix_labels={MixLabels})";
}
