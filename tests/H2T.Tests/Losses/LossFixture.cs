using H2T.Runtime;
using static TorchSharp.torch;

namespace H2T.Tests.Losses;

/// <summary>
/// The small example every loss test shares: 3 classes with counts [100, 10, 1], 4 samples. Expected numbers come
/// from /usr/bin/python3 + numpy with the formulas written out by hand (float64, log-softmax via max-shift); the
/// script is quoted in each test's comment where it matters.
/// </summary>
internal static class LossFixture
{
    public static readonly int[] Counts = [100, 10, 1];

    public static readonly double[] RawLogits = [2.0, 0.5, -1.0, 0.1, 1.2, 0.3, -0.5, 0.2, 0.9, 1.5, -0.3, 0.4];

    /// <summary>Cosine-like logits in [-1, 1] for the normed-head losses (LDAM, GCL).</summary>
    public static readonly double[] RawCosines = [0.8, 0.1, -0.3, 0.2, 0.6, -0.1, -0.4, 0.3, 0.5, 0.7, -0.2, 0.1];

    public static readonly long[] RawTargets = [0, 1, 2, 2];

    /// <summary>numpy: w = (1-b)/(1-b**n); w/w.sum()*3 with b = 0.9999.</summary>
    public static readonly double[] CbWeights = [0.02715872162226033, 0.2703688739931705, 2.7024724043845696];

    public const double Tol = 1e-10;

    public static void Init() => TorchRuntime.Initialize(threads: 2);

    public static Tensor Logits(bool requiresGrad = false) =>
        tensor(RawLogits, [4, 3], float64, requires_grad: requiresGrad);

    public static Tensor Cosines(bool requiresGrad = false) =>
        tensor(RawCosines, [4, 3], float64, requires_grad: requiresGrad);

    public static Tensor Targets() => tensor(RawTargets, int64);

    public static double Value(Tensor scalar) => scalar.item<double>();

    /// <summary>A random long-tailed batch for identity checks (seeded).</summary>
    public static (Tensor Logits, Tensor Targets) RandomBatch(int n, int classes, int seed)
    {
        var g = new Generator((ulong)seed);
        return (randn([n, classes], float64, generator: g) * 2, randint(0, classes, [n], int64, generator: g));
    }
}
