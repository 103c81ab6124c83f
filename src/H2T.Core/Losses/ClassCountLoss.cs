using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// Base of the losses that know the training class counts: holds the counts, the (possibly deferred) class-balanced
/// weighting and its switch in <see cref="OnEpochStart"/>, and the shared reductions.
/// </summary>
public abstract class ClassCountLoss : ClassificationLoss
{
    readonly ClassConstant? weights;
    readonly List<ClassConstant> owned = [];
    bool weightsActive;

    protected ClassCountLoss(IReadOnlyList<int> classCounts, ClassWeighting? weighting)
    {
        LossChecks.Counts(classCounts);
        ClassCounts = classCounts.ToArray();
        Weighting = weighting ?? ClassWeighting.None;
        if (Weighting.Weights is { } w)
        {
            if (w.Count != ClassCounts.Count)
                throw new ArgumentException(
                    $"the weighting has {w.Count} classes but the loss has {ClassCounts.Count}", nameof(weighting));
            weights = Own(w.ToArray());
        }
        // Before the trainer's first OnEpochStart call the loss behaves as at epoch 0.
        weightsActive = Weighting.IsActiveAt(0);
    }

    public IReadOnlyList<int> ClassCounts { get; }

    public int NumClasses => ClassCounts.Count;

    public ClassWeighting Weighting { get; }

    /// <summary>The per-class weights in force now, or null when the loss is unweighted at this epoch.</summary>
    public IReadOnlyList<double>? CurrentWeights => weightsActive ? Weighting.Weights : null;

    /// <summary>The loss family without the weighting decoration, e.g. "ce", "focal", "ldam".</summary>
    protected abstract string BaseName { get; }

    /// <summary>BaseName, prefixed "cb-" when class-balanced from epoch 0, suffixed "-drw" when deferred.</summary>
    public override string Name => Weighting.IsNone ? BaseName
        : Weighting.StartEpoch == 0 ? "cb-" + BaseName : BaseName + "-drw";

    /// <summary>Switches the class-balanced weights on from <see cref="ClassWeighting.StartEpoch"/>.</summary>
    public override void OnEpochStart(int epoch, int totalEpochs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        weightsActive = Weighting.IsActiveAt(epoch);
    }

    /// <summary>Registers a per-class constant that this loss owns and disposes.</summary>
    internal ClassConstant Own(double[] values)
    {
        var constant = new ClassConstant(values);
        owned.Add(constant);
        return constant;
    }

    protected void CheckInputs(Tensor logits, Tensor targets) => CheckInputs(logits, targets, NumClasses);

    /// <summary>
    /// Batch reduction of per-sample losses (N). Unweighted: the mean. Weighted with
    /// <paramref name="normalizeByWeights"/>: sum_i w_{y_i} l_i / sum_i w_{y_i}, as PyTorch's weighted cross_entropy
    /// (used by the CE, LDAM and GCL references). Otherwise: mean_i w_{y_i} l_i, as the focal references reduce.
    /// </summary>
    protected Tensor Reduce(Tensor perSample, Tensor targets, bool normalizeByWeights = true)
    {
        if (!weightsActive || weights is null)
            return perSample.mean();
        var w = weights.On(perSample).index_select(0, targets);
        return normalizeByWeights ? (perSample * w).sum() / w.sum() : (perSample * w).mean();
    }

    /// <summary>log softmax(z)_{y_i} per sample, shape (N).</summary>
    protected static Tensor TargetLogProb(Tensor logProbs, Tensor targets) =>
        logProbs.gather(1, targets.unsqueeze(1)).squeeze(1);

    /// <summary>(1 - p_y)^gamma * (-log p_y) per sample from log-probabilities (N, C): the focal term of Lin et
    /// al.</summary>
    protected static Tensor FocalTerm(Tensor logProbs, Tensor targets, double gamma)
    {
        var logPy = TargetLogProb(logProbs, targets);
        var modulator = (1 - logPy.exp()).clamp_min(0).pow(gamma);
        return -logPy * modulator;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            foreach (var c in owned)
                c.Dispose();
        owned.Clear();
        base.Dispose(disposing);
    }
}
