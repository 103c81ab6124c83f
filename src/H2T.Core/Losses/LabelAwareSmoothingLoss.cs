using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>How MisLAS maps a class count to its smoothing factor between the tail and the head value.</summary>
public enum SmoothingShape
{
    /// <summary>tail + (head - tail) * sin(pi/2 * x): rises fast from the tail.</summary>
    Concave,
    /// <summary>tail + (head - tail) * x.</summary>
    Linear,
    /// <summary>head + (head - tail) * sin(3pi/2 + pi/2 * x): rises slowly from the tail.</summary>
    Convex,
    /// <summary>tail + (head - tail) * x^power.</summary>
    Exp,
}

/// <summary>
/// Label-aware smoothing (MisLAS, Zhong et al., CVPR 2021): per-sample loss
/// (1 - eps_y) * (-log p_y) + eps_y * mean_c(-log p_c), with eps_c going from <see cref="SmoothTail"/> for the rarest
/// class to <see cref="SmoothHead"/> for the most frequent along x = (n_c - n_min) / (n_max - n_min).
/// With all counts equal every class gets the head value.
/// </summary>
public sealed class LabelAwareSmoothingLoss : ClassCountLoss
{
    readonly ClassConstant smoothing;

    public LabelAwareSmoothingLoss(IReadOnlyList<int> classCounts, double smoothHead = 0.4, double smoothTail = 0.1,
        SmoothingShape shape = SmoothingShape.Concave, double power = 3, ClassWeighting? weighting = null)
        : base(classCounts, weighting)
    {
        Shape = shape;
        SmoothHead = smoothHead;
        SmoothTail = smoothTail;
        Power = power;
        smoothing = Own(SmoothingFactors(ClassCounts, smoothHead, smoothTail, shape, power));
    }

    public double SmoothHead { get; }

    public double SmoothTail { get; }

    public SmoothingShape Shape { get; }

    public double Power { get; }

    /// <summary>eps_c per class.</summary>
    public IReadOnlyList<double> Smoothing => smoothing.Values;

    protected override string BaseName => "las";

    /// <summary>The per-class smoothing factors for the given counts and shape.</summary>
    public static double[] SmoothingFactors(IReadOnlyList<int> classCounts, double smoothHead, double smoothTail,
        SmoothingShape shape, double power = 3)
    {
        LossChecks.Counts(classCounts);
        CheckFactor(smoothHead, nameof(smoothHead));
        CheckFactor(smoothTail, nameof(smoothTail));
        if (shape == SmoothingShape.Exp && (double.IsNaN(power) || power <= 0))
            throw new ArgumentOutOfRangeException(nameof(power), power, "the smoothing power must be > 0");
        double nMax = classCounts.Max(), nMin = classCounts.Min();
        return classCounts.Select(n =>
        {
            var x = nMax == nMin ? 1.0 : (n - nMin) / (nMax - nMin);
            return shape switch
            {
                SmoothingShape.Concave => smoothTail + (smoothHead - smoothTail) * Math.Sin(Math.PI / 2 * x),
                SmoothingShape.Linear => smoothTail + (smoothHead - smoothTail) * x,
                SmoothingShape.Convex => smoothHead + (smoothHead - smoothTail) * Math.Sin(1.5 * Math.PI +
                    Math.PI / 2 * x),
                SmoothingShape.Exp => smoothTail + (smoothHead - smoothTail) * Math.Pow(x, power),
                _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, "unknown smoothing shape"),
            };
        }).ToArray();
    }

    /// <summary>Parses "concave", "linear", "convex", "exp" (any case).</summary>
    public static SmoothingShape ParseShape(string shape) => shape?.Trim().ToLowerInvariant() switch
    {
        // Explicit names only: Enum.TryParse would also take "1" or "Concave, Linear".
        "concave" => SmoothingShape.Concave,
        "linear" => SmoothingShape.Linear,
        "convex" => SmoothingShape.Convex,
        "exp" => SmoothingShape.Exp,
        _ => throw new ArgumentException($"unknown smoothing shape '{shape}'; valid: concave, linear, convex, exp",
            nameof(shape)),
    };

    static void CheckFactor(double value, string name)
    {
        if (double.IsNaN(value) || value < 0 || value >= 1)
            throw new ArgumentOutOfRangeException(name, value, "a smoothing factor must lie in [0, 1)");
    }

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var logProbs = logits.log_softmax(1);
        var eps = smoothing.On(logits).index_select(0, targets);
        var nll = -TargetLogProb(logProbs, targets);
        var uniform = -logProbs.mean([1L]);
        var perSample = (1 - eps) * nll + eps * uniform;
        return Reduce(perSample, targets).MoveToOuterDisposeScope();
    }
}
