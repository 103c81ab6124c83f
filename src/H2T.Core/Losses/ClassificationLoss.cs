using H2T.Models;
using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// A loss over logits (N, C) and int64 targets (N) that returns a scalar (the batch mean, possibly class-weighted).
/// Class counts come in the constructor of concrete losses. Losses that own constant tensors dispose them in
/// <see cref="Dispose(bool)"/>.
/// </summary>
public abstract class ClassificationLoss : IDisposable
{
    /// <summary>Short identifier, e.g. "ce", "cb-focal", "ldam-drw".</summary>
    public abstract string Name { get; }

    /// <summary>The loss for hard targets. Returns a fresh 0-d tensor; temporaries are disposed.</summary>
    public abstract Tensor Forward(Tensor logits, Tensor targets);

    /// <summary>
    /// The loss for a mixed batch (mixup/cutmix): <c>lam * L(logits, targetsA) + (1 - lam) * L(logits, targetsB)</c>,
    /// as the mixup reference does. Losses whose forward pass is random (GCL) override this so that both terms see
    /// the same draw.
    /// </summary>
    public virtual Tensor ForwardMixed(Tensor logits, Tensor targetsA, Tensor targetsB, double lam)
    {
        if (double.IsNaN(lam) || lam < 0 || lam > 1)
            throw new ArgumentOutOfRangeException(nameof(lam), lam, "the mixing coefficient must lie in [0, 1]");
        using var scope = NewDisposeScope();
        var a = Forward(logits, targetsA);
        var b = Forward(logits, targetsB);
        return (a * lam + b * (1 - lam)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The loss of a classifier on features: the trainers' entry point. By default the loss of the head's output;
    /// multi-expert losses (RIDE, ResLT) override it to train on every expert's logits.
    /// </summary>
    public virtual Tensor Forward(ClassifierHead head, Tensor features, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(head);
        return Forward(head.call(features), targets);
    }

    /// <summary>The mixed-batch form of <see cref="Forward(ClassifierHead, Tensor, Tensor)"/>.</summary>
    public virtual Tensor ForwardMixed(ClassifierHead head, Tensor features, Tensor targetsA, Tensor targetsB,
        double lam)
    {
        ArgumentNullException.ThrowIfNull(head);
        return ForwardMixed(head.call(features), targetsA, targetsB, lam);
    }

    /// <summary>
    /// Refuses a classifier this loss cannot train: a multi-expert loss needs its own multi-expert head, and a loss
    /// that applies its own scale to cosine logits (LDAM, GCL) cannot run on a multi-expert head's logits.
    /// </summary>
    public virtual void CheckHead(ClassifierHead head)
    {
        ArgumentNullException.ThrowIfNull(head);
        if (WantsNormalizedClassifier && head is MultiExpertHead)
            throw new ArgumentException(
                $"the {Name} loss scales cosine logits itself; the '{head.Kind}' classifier's logits are not those " +
                $"(use ce, bsce, las ... or the {head.Kind} loss)");
    }

    /// <summary>Called by the trainer at the start of every epoch (0-based), also after a resume.</summary>
    public virtual void OnEpochStart(int epoch, int totalEpochs) { }

    /// <summary>True for losses (LDAM, GCL) that expect cosine logits from a normalised linear head.</summary>
    public virtual bool WantsNormalizedClassifier => false;

    /// <summary>
    /// Training mode (default). Random perturbations (GCL's Gaussian clouds) apply only in training mode, so a
    /// validation loss computed with <c>Training = false</c> is deterministic.
    /// </summary>
    public bool Training { get; set; } = true;

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }

    /// <summary>Checks shapes and dtypes; <paramref name="numClasses"/> &lt; 0 skips the class-count check.</summary>
    protected static void CheckInputs(Tensor logits, Tensor targets, long numClasses)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        if (logits.ndim != 2)
            throw new ArgumentException($"logits must be (N, C), got shape [{string.Join(", ", logits.shape)}]",
                nameof(logits));
        if (!logits.is_floating_point())
            throw new ArgumentException($"logits must be floating point, got {logits.dtype}", nameof(logits));
        if (numClasses >= 0 && logits.shape[1] != numClasses)
            throw new ArgumentException(
                $"logits have {logits.shape[1]} classes but the loss was built for {numClasses}", nameof(logits));
        if (targets.dtype != ScalarType.Int64)
            throw new ArgumentException($"targets must be int64 class indices, got {targets.dtype}", nameof(targets));
        if (targets.ndim != 1 || targets.shape[0] != logits.shape[0])
            throw new ArgumentException(
                $"targets must be (N) with N = {logits.shape[0]}, got shape [{string.Join(", ", targets.shape)}]",
                    nameof(targets));
    }
}
