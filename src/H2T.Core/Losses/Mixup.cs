using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// Mixup (Zhang et al., ICLR 2018) as the long-tail references use it: one lam ~ Beta(alpha, alpha) and one
/// permutation per batch; x~ = lam x + (1 - lam) x[perm]; loss = lam L(y) + (1 - lam) L(y[perm])
/// (<c>ClassificationLoss.ForwardMixed</c>).
/// </summary>
public static class Mixup
{
    /// <summary>
    /// Mixes a batch. lam comes from <paramref name="rng"/> (lam = 1 when alpha &lt;= 0, as in the reference); the
    /// permutation is drawn on the CPU from <paramref name="generator"/> (torch's global generator when null) even
    /// when alpha &lt;= 0, so the random streams do not depend on alpha. All returned tensors are fresh.
    /// </summary>
    public static (Tensor Mixed, Tensor TargetsA, Tensor TargetsB, double Lambda) Apply(Tensor images, Tensor targets,
        double alpha, Random rng, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(rng);
        if (double.IsNaN(alpha))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be a number");
        if (images.ndim < 1 || targets.ndim < 1 || images.shape[0] != targets.shape[0])
            throw new ArgumentException(
                $"images and targets must share the batch dimension, got [{string.Join(", ", images.shape)}] and " +
                    $"[{string.Join(", ", targets.shape)}]");
        if (!images.is_floating_point())
            throw new ArgumentException($"images must be floating point, got {images.dtype}", nameof(images));
        var lam = alpha > 0 ? SampleBeta(alpha, rng) : 1.0;
        using var scope = NewDisposeScope();
        var perm = randperm(images.shape[0], generator: generator).to(images.device);
        var mixed = images * lam + images.index_select(0, perm) * (1 - lam);
        var targetsB = targets.index_select(0, perm.to(targets.device));
        return (mixed.MoveToOuterDisposeScope(), targets.alias().MoveToOuterDisposeScope(),
            targetsB.MoveToOuterDisposeScope(), lam);
    }

    /// <summary>
    /// One draw from Beta(alpha, alpha) as X / (X + Y) with X, Y ~ Gamma(alpha, 1) (Marsaglia-Tsang; for alpha &lt; 1
    /// the boost Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha)). Computed from log X - log Y, so tiny alphas do not
    /// underflow to 0/0.
    /// </summary>
    public static double SampleBeta(double alpha, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (double.IsNaN(alpha) || alpha <= 0 || double.IsInfinity(alpha))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "Beta(alpha, alpha) needs a finite alpha > 0");
        var logX = LogGamma(alpha, rng);
        var logY = LogGamma(alpha, rng);
        // X / (X + Y) = 1 / (1 + exp(log Y - log X)).
        return 1.0 / (1.0 + Math.Exp(logY - logX));
    }

    /// <summary>The log of one Gamma(shape, 1) draw.</summary>
    static double LogGamma(double shape, Random rng)
    {
        if (shape < 1)
            return LogGamma(shape + 1, rng) + Math.Log(OpenUniform(rng)) / shape;
        double d = shape - 1.0 / 3.0, c = 1.0 / Math.Sqrt(9 * d);
        while (true)
        {
            double x = StandardNormal(rng), v = 1 + c * x;
            if (v <= 0)
                continue;
            v = v * v * v;
            if (Math.Log(OpenUniform(rng)) < 0.5 * x * x + d - d * v + d * Math.Log(v))
                return Math.Log(d) + Math.Log(v);
        }
    }

    /// <summary>Uniform on (0, 1], safe for Math.Log.</summary>
    static double OpenUniform(Random rng) => 1.0 - rng.NextDouble();

    /// <summary>Box-Muller, one value per call (the pair's second value is dropped to keep no hidden state).</summary>
    static double StandardNormal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(OpenUniform(rng))) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
