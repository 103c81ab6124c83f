namespace H2T.Losses;

/// <summary>
/// Per-class loss weights over time: none, or class-balanced weights by the effective number of samples
/// (Cui et al., CVPR 2019) that switch on at <see cref="StartEpoch"/> (0 = from the start, "cb-*";
/// later = deferred re-weighting, DRW, Cao et al., NeurIPS 2019).
/// </summary>
public sealed class ClassWeighting
{
    ClassWeighting(double[]? weights, int startEpoch, double beta)
    {
        Weights = weights;
        StartEpoch = startEpoch;
        Beta = beta;
    }

    /// <summary>Unweighted at every epoch.</summary>
    public static ClassWeighting None { get; } = new(null, -1, 0);

    /// <summary>Class-balanced weights from <paramref name="startEpoch"/> on (0-based); unweighted before it.</summary>
    public static ClassWeighting ClassBalanced(IReadOnlyList<int> classCounts, double beta, int startEpoch = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(startEpoch);
        return new(EffectiveNumberWeights(classCounts, beta), startEpoch, beta);
    }

    /// <summary>The weights once on (normalised to sum to C), or null for <see cref="None"/>.</summary>
    public IReadOnlyList<double>? Weights { get; }

    /// <summary>First epoch (0-based) with weights; -1 for <see cref="None"/>.</summary>
    public int StartEpoch { get; }

    public double Beta { get; }

    public bool IsNone => Weights is null;

    /// <summary>True when weights are on at <paramref name="epoch"/>.</summary>
    public bool IsActiveAt(int epoch) => Weights is not null && epoch >= StartEpoch;

    /// <summary>
    /// w_c = (1 - beta) / (1 - beta^n_c), rescaled so that the C weights sum to C (as both the class-balanced-loss and
    /// LDAM-DRW references do). beta = 0 gives all ones; beta -> 1 approaches inverse frequency.
    /// </summary>
    public static double[] EffectiveNumberWeights(IReadOnlyList<int> classCounts, double beta)
    {
        LossChecks.Counts(classCounts);
        if (double.IsNaN(beta) || beta < 0 || beta >= 1)
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "the class-balanced beta must lie in [0, 1)");
        var raw = classCounts.Select(n => (1 - beta) / (1 - Math.Pow(beta, n))).ToArray();
        var scale = raw.Length / raw.Sum();
        return raw.Select(w => w * scale).ToArray();
    }
}

internal static class LossChecks
{
    public static void Counts(IReadOnlyList<int> classCounts)
    {
        ArgumentNullException.ThrowIfNull(classCounts);
        if (classCounts.Count == 0)
            throw new ArgumentException("class counts must not be empty", nameof(classCounts));
        for (int c = 0; c < classCounts.Count; c++)
            if (classCounts[c] <= 0)
                throw new ArgumentException(
                    $"every class needs at least one training sample; class {c} has {classCounts[c]}",
                        nameof(classCounts));
    }
}
