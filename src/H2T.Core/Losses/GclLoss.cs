using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// Gaussian clouded logit loss (GCL, Li et al., CVPR 2022) over cosine logits z (N, C). Variant implemented (that of
/// the authors' <c>GCLLoss</c>):
/// <list type="number">
/// <item>cloud sizes m_c = log n_max - log n_c (0 for the largest class, largest for the rarest);</item>
/// <item>in training mode, noise e ~ N(0, std 1/3) per logit, clamped to [-1, 1], and
///   z'_{ic} = z_{ic} - NoiseMul * |e_{ic}| * m_c / max_c m_c (every logit of a sample is pushed down by the cloud of
///   its class, not only the target's); no perturbation when all counts are equal (max m = 0) or in eval mode;</item>
/// <item>a constant margin <see cref="Margin"/> is subtracted from the target logit and everything is scaled by s:
///   o = s * (z' - Margin * onehot(y));</item>
/// <item>stage I: weighted CE on o (PyTorch-style weighted mean); stage II (the reference's <c>train_cls</c>, when
///   <see cref="FocalGamma"/> is set): the focal term on o, averaged over the batch.</item>
/// </list>
/// Reference settings: stage I m = 0, s = 30, NoiseMul = 0.5; stage II m = 0.1, s = 20, focal gamma 1, class-balanced
/// weights. The noise is drawn on the CPU from <c>generator</c> (or torch's global CPU generator when null) and then
/// moved to the logits' device, so one <c>torch.manual_seed</c> reproduces it on any device.
/// </summary>
public sealed class GclLoss : ClassCountLoss
{
    readonly ClassConstant clouds;
    readonly Generator? generator;

    public GclLoss(IReadOnlyList<int> classCounts, double noiseMul = 0.5, double scale = 30, double margin = 0,
        double? focalGamma = null, ClassWeighting? weighting = null, Generator? generator = null)
        : base(classCounts, weighting)
    {
        if (double.IsNaN(noiseMul) || noiseMul < 0)
            throw new ArgumentOutOfRangeException(nameof(noiseMul), noiseMul, "the GCL noise multiplier must be >= 0");
        if (double.IsNaN(scale) || scale <= 0)
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "the GCL scale must be > 0");
        if (double.IsNaN(margin) || margin < 0)
            throw new ArgumentOutOfRangeException(nameof(margin), margin, "the GCL margin must be >= 0");
        if (focalGamma is { } g && (double.IsNaN(g) || g < 0))
            throw new ArgumentOutOfRangeException(nameof(focalGamma), g, "the GCL focal gamma must be >= 0");
        NoiseMul = noiseMul;
        Scale = scale;
        Margin = margin;
        FocalGamma = focalGamma;
        this.generator = generator;
        var logMax = Math.Log(ClassCounts.Max());
        var m = ClassCounts.Select(n => logMax - Math.Log(n)).ToArray();
        CloudSizes = m;
        var top = m.Max();
        // Pre-divided by max m so that the forward pass is one multiply; all zeros when counts are uniform.
        clouds = Own(m.Select(v => top > 0 ? noiseMul * v / top : 0.0).ToArray());
    }

    public double NoiseMul { get; }

    public double Scale { get; }

    /// <summary>Constant margin subtracted from the target cosine (the reference's <c>m</c>).</summary>
    public double Margin { get; }

    /// <summary>Null: CE (stage I). A value: focal reduction (the reference's stage-II <c>train_cls</c>).</summary>
    public double? FocalGamma { get; }

    /// <summary>m_c = log n_max - log n_c.</summary>
    public IReadOnlyList<double> CloudSizes { get; }

    public override bool WantsNormalizedClassifier => true;

    protected override string BaseName => "gcl";

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var clouded = Perturb(logits);
        return LossOn(clouded, targets).MoveToOuterDisposeScope();
    }

    /// <summary>Mixed batch: one noise draw shared by both terms, so the two targets see the same clouded
    /// logits.</summary>
    public override Tensor ForwardMixed(Tensor logits, Tensor targetsA, Tensor targetsB, double lam)
    {
        if (double.IsNaN(lam) || lam < 0 || lam > 1)
            throw new ArgumentOutOfRangeException(nameof(lam), lam, "the mixing coefficient must lie in [0, 1]");
        CheckInputs(logits, targetsA);
        CheckInputs(logits, targetsB);
        using var scope = NewDisposeScope();
        var clouded = Perturb(logits);
        var loss = LossOn(clouded, targetsA) * lam + LossOn(clouded, targetsB) * (1 - lam);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>The clouded logits z' (before margin and scale); z itself in eval mode. Exposed for tests.</summary>
    internal Tensor Perturb(Tensor logits)
    {
        if (!Training || NoiseMul == 0 || CloudSizes.Max() == 0)
            return logits.alias();
        var noise = randn(logits.shape, dtype: ScalarType.Float32, generator: generator)
            .div_(3).clamp_(-1, 1).abs_()
            .to(logits.dtype, logits.device);
        return logits - noise * clouds.On(logits).unsqueeze(0);
    }

    Tensor LossOn(Tensor clouded, Tensor targets)
    {
        var output = Margin == 0 ? clouded * Scale
            : (clouded - nn.functional.one_hot(targets, NumClasses).to(clouded.dtype) * Margin) * Scale;
        var logProbs = output.log_softmax(1);
        return FocalGamma is { } gamma
            ? Reduce(FocalTerm(logProbs, targets, gamma), targets, normalizeByWeights: false)
            : Reduce(-TargetLogProb(logProbs, targets), targets);
    }
}
