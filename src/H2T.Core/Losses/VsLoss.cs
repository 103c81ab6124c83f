using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// Vector-scaling loss (Kini et al., "Label-Imbalanced and Group-Sensitive Classification under
/// Overparameterization", NeurIPS 2021): cross-entropy on logits scaled per class and shifted per class,
/// z'_c = (n_c / n_max)^gamma z_c + tau log(pi_c), with pi_c = n_c / sum n. The multiplicative part (gamma) keeps
/// acting when the training loss reaches zero, where the additive logit adjustment (tau, as in "logit-adjust") fades.
/// gamma = 0 is logit adjustment with that tau; tau = 0 is the scaling alone. Defaults as the authors' code: 0.3 and 1.
/// </summary>
public sealed class VsLoss : ClassCountLoss
{
    public static IReadOnlyList<MethodOption> Options { get; } =
    [
        new("loss.VS.gamma", "gamma of the per-class scale (n_c / n_max)^gamma, >= 0 (default 0.3)"),
        new("loss.VS.tau", "tau of the per-class shift tau log(pi_c), >= 0 (default 1)"),
    ];

    readonly ClassConstant scale, shift;

    public VsLoss(IReadOnlyList<int> classCounts, double gamma = 0.3, double tau = 1.0,
        ClassWeighting? weighting = null)
        : base(classCounts, weighting)
    {
        if (!(gamma >= 0) || double.IsInfinity(gamma)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma,
            "gamma must be a finite number >= 0");
        if (!(tau >= 0) || double.IsInfinity(tau)) throw new ArgumentOutOfRangeException(nameof(tau), tau,
            "tau must be a finite number >= 0");
        (Gamma, Tau) = (gamma, tau);
        double max = ClassCounts.Max(), total = ClassCounts.Sum(n => (double)n);
        scale = Own(ClassCounts.Select(n => Math.Pow(n / max, gamma)).ToArray());
        shift = Own(ClassCounts.Select(n => tau * Math.Log(n / total)).ToArray());
    }

    public double Gamma { get; }
    public double Tau { get; }

    /// <summary>(n_c / n_max)^gamma, multiplied into the logits inside the loss.</summary>
    public IReadOnlyList<double> Scale => scale.Values;

    /// <summary>tau log(n_c / sum n), added after.</summary>
    public IReadOnlyList<double> Shift => shift.Values;

    /// <summary>gamma and tau from a config's loss options (the defaults above when absent).</summary>
    public static (double Gamma, double Tau) Read(IReadOnlyDictionary<string, string>? options) =>
        (MethodOptions.Number(options, "loss.VS.gamma", 0.3, v => v >= 0, "a number >= 0"),
         MethodOptions.Number(options, "loss.VS.tau", 1.0, v => v >= 0, "a number >= 0"));

    public static VsLoss From(IReadOnlyDictionary<string, string>? options, IReadOnlyList<int> classCounts,
        ClassWeighting weighting)
    {
        var (gamma, tau) = Read(options);
        return new VsLoss(classCounts, gamma, tau, weighting);
    }

    protected override string BaseName => "vs";

    public override Tensor Forward(Tensor logits, Tensor targets)
    {
        CheckInputs(logits, targets);
        using var scope = NewDisposeScope();
        var adjusted = logits * scale.On(logits).unsqueeze(0) + shift.On(logits).unsqueeze(0);
        var nll = -TargetLogProb(adjusted.log_softmax(1), targets);
        return Reduce(nll, targets).MoveToOuterDisposeScope();
    }
}
