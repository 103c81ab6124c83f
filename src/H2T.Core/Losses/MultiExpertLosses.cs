using H2T.Models;
using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// A loss over the expert logits (N x E x K) of a <see cref="MultiExpertHead"/>. Given only the combined logits
/// (validation, or a single-branch head) it is plain cross-entropy on them, as RIDE's loss without its extra input.
/// </summary>
public abstract class MultiExpertLoss(IReadOnlyList<int> classCounts,
    ClassWeighting? weighting) : ClassCountLoss(classCounts, weighting)
{
    /// <summary>The loss of the expert logits N x E x K.</summary>
    public abstract Tensor ForwardExperts(Tensor expertLogits, Tensor targets);

    /// <summary>The classifier kind this loss trains ("ride", "reslt").</summary>
    protected abstract string HeadKind { get; }

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        return (-TargetLogProb(logits.log_softmax(1), targets)).mean().MoveToOuterDisposeScope();
    }

    public override Tensor Forward(ClassifierHead head, Tensor features, Tensor targets)
    {
        CheckHead(head);
        using var scope = NewDisposeScope();
        return ForwardExperts(((MultiExpertHead)head).ExpertLogits(features), targets).MoveToOuterDisposeScope();
    }

    public override Tensor ForwardMixed(ClassifierHead head, Tensor features, Tensor targetsA, Tensor targetsB,
        double lam)
    {
        CheckHead(head);
        if (double.IsNaN(lam) || lam < 0 || lam > 1)
            throw new ArgumentOutOfRangeException(nameof(lam), lam, "the mixing coefficient must lie in [0, 1]");
        using var scope = NewDisposeScope();
        var z = ((MultiExpertHead)head).ExpertLogits(features);
        return (ForwardExperts(z, targetsA) * lam + ForwardExperts(z, targetsB) * (1 - lam)).MoveToOuterDisposeScope();
    }

    public override void CheckHead(ClassifierHead head)
    {
        ArgumentNullException.ThrowIfNull(head);
        if (head is not MultiExpertHead || head.Kind != HeadKind)
            throw new ArgumentException(
                $"the {BaseName} loss trains the '{HeadKind}' classifier; this one is '{head.Kind}' (use a " +
                $"{HeadKind}_* backbone, e.g. {HeadKind}_resnet32)");
    }

    protected void CheckExpertInputs(Tensor expertLogits, Tensor targets)
    {
        if (expertLogits.dim() != 3)
            throw new ArgumentException(
                $"expert logits must be N x E x K, got [{string.Join(", ", expertLogits.shape)}]",
                nameof(expertLogits));
        using var first = expertLogits.select(1, 0);
        CheckInputs(first, targets);
    }
}

/// <summary>
/// RIDE's loss (Wang et al., ICLR 2021), per expert e with logits z_e (already scaled by s, see <see
/// cref="RideHead"/>):
/// LDAM cross-entropy CE(z_e - s * m_y * onehot(y)) with margins m_c proportional to n_c^(-1/4) (largest
/// <c>maxMargin</c>) and, from the DRW epoch on, class-balanced weights; plus the diversity term
/// lambda * T^2 * KL(softmax(mean_e z / T) || softmax(z_e / T)) (batch mean), lambda = <c>diversityFactor</c>
/// (negative: rewards disagreement with the ensemble). From the DRW epoch on the temperature is per class,
/// T_c = T0 * w_c with w_c = (C f_c r + 1 - r) / max (f_c the class frequency, r = <c>reweightFactor</c>),
/// and T^2 is the mean of T_c squared. The experts' losses add up.
/// </summary>
public sealed class RideLoss : MultiExpertLoss
{
    readonly ClassConstant margins, temperatures;

    public RideLoss(IReadOnlyList<int> classCounts, double maxMargin = 0.5, double scale = 30,
        double diversityFactor = -0.2,
        double diversityTemperature = 1.0, double reweightFactor = 0.05,
            ClassWeighting? weighting = null) : base(classCounts, weighting)
    {
        if (double.IsNaN(maxMargin) || maxMargin < 0) throw new ArgumentOutOfRangeException(nameof(maxMargin),
            maxMargin, "the RIDE margin must be >= 0");
        if (double.IsNaN(scale) || scale <= 0) throw new ArgumentOutOfRangeException(nameof(scale), scale,
            "the RIDE scale must be > 0");
        if (double.IsNaN(diversityTemperature) || diversityTemperature <= 0)
            throw new ArgumentOutOfRangeException(nameof(diversityTemperature), diversityTemperature,
                "the diversity temperature must be > 0");
        if (double.IsNaN(diversityFactor)) throw new ArgumentOutOfRangeException(nameof(diversityFactor),
            diversityFactor, "the diversity factor must be a number");
        MaxMargin = maxMargin;
        Scale = scale;
        DiversityFactor = diversityFactor;
        DiversityTemperature = diversityTemperature;
        var raw = ClassCounts.Select(n => Math.Pow(n, -0.25)).ToArray();
        var top = raw.Max();
        margins = Own(raw.Select(m => m * maxMargin / top).ToArray());
        double total = ClassCounts.Sum();
        int c = ClassCounts.Count;
        var w = ClassCounts.Select(n => c * (n / total) * reweightFactor + 1 - reweightFactor).ToArray();
        if (w.Any(v => v <= 0)) throw new ArgumentOutOfRangeException(nameof(reweightFactor), reweightFactor,
            "the reweight factor is too large: a class temperature is not positive");
        var wmax = w.Max();
        temperatures = Own(w.Select(v => diversityTemperature * v / wmax).ToArray());
    }

    public double MaxMargin { get; }
    public double Scale { get; }
    public double DiversityFactor { get; }
    public double DiversityTemperature { get; }

    /// <summary>Per-class margins m_c = MaxMargin * (n_min / n_c)^(1/4).</summary>
    public IReadOnlyList<double> Margins => margins.Values;

    /// <summary>The per-class diversity temperatures used once the DRW weights are on.</summary>
    public IReadOnlyList<double> ClassTemperatures => temperatures.Values;

    protected override string BaseName => "ride";
    protected override string HeadKind => "ride";

    public override Tensor ForwardExperts(Tensor expertLogits, Tensor targets)
    {
        CheckExpertInputs(expertLogits, targets);
        using var scope = NewDisposeScope();
        long n = expertLogits.shape[0], experts = expertLogits.shape[1];
        var mean = expertLogits.mean([1L]);
        var oneHot = nn.functional.one_hot(targets, NumClasses).to(expertLogits.dtype);
        var shift = oneHot * margins.On(expertLogits).unsqueeze(0) * Scale;
        bool reweighted = CurrentWeights is not null;
        Tensor temperature = reweighted ? temperatures.On(expertLogits).unsqueeze(0) : tensor(DiversityTemperature,
            expertLogits.dtype, expertLogits.device);
        double tSquared = reweighted ? ClassTemperatures.Average() * ClassTemperatures.Average() :
            DiversityTemperature * DiversityTemperature;
        Tensor target;
        using (no_grad()) target = (mean / temperature).softmax(1);
        var logTarget = target.clamp_min(1e-30).log();
        Tensor loss = zeros([], expertLogits.dtype, expertLogits.device);
        for (long e = 0; e < experts; e++)
        {
            var z = expertLogits.select(1, e);
            // RIDE: with no diversity term every expert's base loss is the ensemble's.
            var zBase = DiversityFactor == 0 ? mean : z;
            loss = loss + Reduce(-TargetLogProb((zBase - shift).log_softmax(1), targets), targets);
            if (DiversityFactor != 0)
            {
                var kl = (target * (logTarget - (z / temperature).log_softmax(1))).sum() / n;
                loss = loss + kl * (DiversityFactor * tSquared);
            }
        }
        return loss.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// ResLT's loss (Cui et al., TPAMI 2022) over the head, medium and tail branch logits: the individual term
/// sums each branch's cross-entropy (-log(softmax + 1e-7) at the target) over the samples it covers (head branch:
/// all; medium branch: medium and tail classes; tail branch: tail classes) and divides by the number of covered
/// (sample, branch) pairs; the fusion term is the cross-entropy of the summed logits. Loss = beta * individual +
/// (1 - beta) * fusion. Medium and tail are class ranks by training count (rank &gt;= <c>mediumStart</c>,
/// &gt;= <c>tailStart</c>), as the reference's index ranges over count-sorted CIFAR classes.
/// </summary>
public sealed class ResLtLoss : MultiExpertLoss
{
    readonly ClassConstant mediumMask, tailMask;

    public ResLtLoss(IReadOnlyList<int> classCounts, double beta, int mediumStart, int tailStart) : base(classCounts,
        null)
    {
        if (double.IsNaN(beta) || beta < 0 ||
            beta > 1) throw new ArgumentException($"ResLT's beta must lie in [0, 1], got {beta}");
        int c = ClassCounts.Count;
        if (mediumStart < 0 || mediumStart > tailStart || tailStart > c)
            throw new ArgumentException(
                $"ResLT's class ranks need 0 <= medium start ({mediumStart}) <= tail start ({tailStart}) <= {c} " +
                    $"classes");
        Beta = beta;
        MediumStart = mediumStart;
        TailStart = tailStart;
        // Rank 0 = most images; ties keep the class order.
        var rank = new int[c];
        var order = Enumerable.Range(0, c).OrderByDescending(i => ClassCounts[i]).ThenBy(i => i).ToArray();
        for (int r = 0; r < c; r++) rank[order[r]] = r;
        mediumMask = Own(rank.Select(r => r >= mediumStart ? 1.0 : 0.0).ToArray());
        tailMask = Own(rank.Select(r => r >= tailStart ? 1.0 : 0.0).ToArray());
    }

    /// <summary>ResLT's class ranks where medium and tail begin: its CIFAR-10 split (2, 4) for 10 classes, else its
    /// CIFAR-100 proportions (35% and 70% of the classes).</summary>
    public static (int Medium, int Tail) DefaultStarts(int classes) =>
        classes == 10 ? (2, 4) : ((int)Math.Round(classes * 0.35), (int)Math.Round(classes * 0.70));

    public double Beta { get; }
    public int MediumStart { get; }
    public int TailStart { get; }

    protected override string BaseName => "reslt";
    protected override string HeadKind => "reslt";

    public override Tensor ForwardExperts(Tensor expertLogits, Tensor targets)
    {
        CheckExpertInputs(expertLogits, targets);
        if (expertLogits.shape[1] != 3) throw new ArgumentException(
            $"ResLT needs 3 branch logits, got {expertLogits.shape[1]}", nameof(expertLogits));
        using var scope = NewDisposeScope();
        // N x 3
        var ce = -((expertLogits.softmax(2) + 1e-7).log().gather(2, targets.view(-1, 1, 1).expand(-1, 3,
            1)).squeeze(2));
        var m = mediumMask.On(expertLogits).index_select(0, targets);
        var t = tailMask.On(expertLogits).index_select(0, targets);
        var covered = stack([ones_like(m), m, t], 1);
        var individual = (ce * covered).sum() / covered.sum();
        var fusion = (-TargetLogProb(expertLogits.sum([1L]).log_softmax(1), targets)).mean();
        return (individual * Beta + fusion * (1 - Beta)).MoveToOuterDisposeScope();
    }
}
