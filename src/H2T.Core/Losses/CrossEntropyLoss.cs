using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>Softmax cross-entropy; with a weighting it is class-balanced CE ("cb-ce") or CE-DRW.</summary>
public sealed class CrossEntropyLoss(IReadOnlyList<int> classCounts, ClassWeighting? weighting = null)
    : ClassCountLoss(classCounts, weighting)
{
    protected override string BaseName => "ce";

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var nll = -TargetLogProb(logits.log_softmax(1), targets);
        return Reduce(nll, targets).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Softmax focal loss (Lin et al.): w_y (1 - p_y)^gamma (-log p_y), averaged over the batch (not normalised by the
/// weights, as the focal references do). gamma = 0 is cross-entropy. Note: the LDAM-DRW/GCL code computes p_y from
/// the already weighted CE; we use the softmax probability, which is the same when unweighted.
/// </summary>
public sealed class FocalLoss : ClassCountLoss
{
    public FocalLoss(IReadOnlyList<int> classCounts, double gamma, ClassWeighting? weighting = null)
        : base(classCounts, weighting)
    {
        if (double.IsNaN(gamma) || gamma < 0)
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "the focal gamma must be >= 0");
        Gamma = gamma;
    }

    public double Gamma { get; }

    protected override string BaseName => "focal";

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var perSample = FocalTerm(logits.log_softmax(1), targets, Gamma);
        return Reduce(perSample, targets, normalizeByWeights: false).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Logit-adjusted cross-entropy (Menon et al., ICLR 2021): CE on z_c + tau * log pi_c with pi the training class
/// prior. tau = 1 is Balanced Softmax (Ren et al., NeurIPS 2020; "bsce"); tau = 0 is plain CE. The adjustment is
/// applied in the loss only; predictions use the raw logits.
/// </summary>
public sealed class LogitAdjustedLoss : ClassCountLoss
{
    readonly ClassConstant adjustment;

    public LogitAdjustedLoss(IReadOnlyList<int> classCounts, double tau = 1.0, ClassWeighting? weighting = null)
        : base(classCounts, weighting)
    {
        if (double.IsNaN(tau) || double.IsInfinity(tau))
            throw new ArgumentOutOfRangeException(nameof(tau), tau, "tau must be finite");
        Tau = tau;
        double total = ClassCounts.Sum(n => (double)n);
        adjustment = Own(ClassCounts.Select(n => tau * Math.Log(n / total)).ToArray());
    }

    public double Tau { get; }

    /// <summary>tau * log(n_c / sum n), added to the logits inside the loss.</summary>
    public IReadOnlyList<double> Adjustment => adjustment.Values;

    protected override string BaseName => Tau == 1.0 ? "bsce" : "logit-adjust";

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var adjusted = logits + adjustment.On(logits).unsqueeze(0);
        var nll = -TargetLogProb(adjusted.log_softmax(1), targets);
        return Reduce(nll, targets).MoveToOuterDisposeScope();
    }
}
