using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// Label-distribution-aware margin loss (Cao et al., NeurIPS 2019) over cosine logits:
/// CE(s * (z - m_y * onehot(y))) with m_c proportional to n_c^(-1/4), the largest margin (rarest class) equal to
/// <see cref="MaxMargin"/>. Usually combined with DRW (<see cref="ClassWeighting.ClassBalanced"/> with a start epoch).
/// </summary>
public sealed class LdamLoss : ClassCountLoss
{
    readonly ClassConstant margins;

    public LdamLoss(IReadOnlyList<int> classCounts, double maxMargin = 0.5, double scale = 30,
        ClassWeighting? weighting = null)
        : base(classCounts, weighting)
    {
        if (double.IsNaN(maxMargin) || maxMargin < 0)
            throw new ArgumentOutOfRangeException(nameof(maxMargin), maxMargin, "the LDAM margin must be >= 0");
        if (double.IsNaN(scale) || scale <= 0)
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "the LDAM scale must be > 0");
        MaxMargin = maxMargin;
        Scale = scale;
        var raw = ClassCounts.Select(n => Math.Pow(n, -0.25)).ToArray();
        var top = raw.Max();
        margins = Own(raw.Select(m => m * maxMargin / top).ToArray());
    }

    public double MaxMargin { get; }

    public double Scale { get; }

    /// <summary>Per-class margins m_c = MaxMargin * (n_min / n_c)^(1/4).</summary>
    public IReadOnlyList<double> Margins => margins.Values;

    public override bool WantsNormalizedClassifier => true;

    protected override string BaseName => "ldam";

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var oneHot = nn.functional.one_hot(targets, NumClasses).to(logits.dtype);
        // Only the target logit loses its class margin.
        var output = (logits - oneHot * margins.On(logits).unsqueeze(0)) * Scale;
        var nll = -TargetLogProb(output.log_softmax(1), targets);
        return Reduce(nll, targets).MoveToOuterDisposeScope();
    }
}
