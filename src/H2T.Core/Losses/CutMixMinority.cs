using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// CMO's stage-I augmentation (Park et al., CVPR 2022, "The Majority Can Help the Minority"): with probability
/// <see cref="Probability"/> a batch gets CutMix, with the pasted patches taken from a second batch drawn by an
/// inverse-frequency ("reverse") sampler. Minority images land on majority backgrounds. One box per batch,
/// lam ~ Beta(beta, beta); the label weight is the exact kept area. Off before <see cref="StartEpoch"/> and in the last
/// <see cref="EndMargin"/> epochs, as in the reference (3 and 3). <see cref="Sampler"/> "reverse" draws class k with
/// probability proportional to 1 / n_k (the paper's q(1, k)); the reference code's per-sample weights 1 / n_k amount
/// to a class-balanced draw, which "balanced" gives.
/// </summary>
public sealed record CmoConfig(double Probability = 0.5, double Beta = 1.0, int StartEpoch = 3, int EndMargin = 3, string Sampler = "reverse")
{
    public bool ActiveAt(int epoch, int totalEpochs) => Probability > 0 && epoch >= StartEpoch && epoch < totalEpochs - EndMargin;

    public void Validate()
    {
        if (Probability is < 0 or > 1 || double.IsNaN(Probability)) throw new ArgumentException($"cmo probability must lie in [0, 1], got {Probability}");
        if (!(Beta > 0)) throw new ArgumentException($"cmo beta must be > 0, got {Beta}");
        if (StartEpoch < 0 || EndMargin < 0) throw new ArgumentException("cmo start_data_aug and end_data_aug must be >= 0 epochs");
        if (Sampler is not ("reverse" or "balanced" or "sqrt")) throw new ArgumentException($"cmo sampler must be reverse, balanced or sqrt, got '{Sampler}'");
    }
}

public static class CutMixMinority
{
    /// <summary>
    /// Pastes the box [y0, y1) x [x0, x1) of <paramref name="minority"/> onto <paramref name="majority"/>. Returns the
    /// mixed batch and lam = the fraction of each image still from the majority batch. Both batches share a shape.
    /// </summary>
    public static (Tensor Mixed, double Lambda) Apply(Tensor majority, Tensor minority, double beta, Random rng)
    {
        ArgumentNullException.ThrowIfNull(majority);
        ArgumentNullException.ThrowIfNull(minority);
        ArgumentNullException.ThrowIfNull(rng);
        if (!majority.shape.SequenceEqual(minority.shape))
            throw new ArgumentException($"batches differ in shape: [{string.Join(", ", majority.shape)}] and [{string.Join(", ", minority.shape)}]");
        long h = majority.shape[2], w = majority.shape[3];
        var lam = Mixup.SampleBeta(beta, rng);
        var (y0, y1, x0, x1) = Box(h, w, lam, rng);
        var mixed = majority.clone();
        if (y1 > y0 && x1 > x0)
        {
            using var patch = minority[TensorIndex.Ellipsis, TensorIndex.Slice(y0, y1), TensorIndex.Slice(x0, x1)];
            mixed[TensorIndex.Ellipsis, TensorIndex.Slice(y0, y1), TensorIndex.Slice(x0, x1)] = patch;
        }
        return (mixed, 1.0 - (double)(y1 - y0) * (x1 - x0) / (h * w));
    }

    /// <summary>CutMix's box: side ratio sqrt(1 - lam), centre uniform, clipped to the image.</summary>
    public static (long Y0, long Y1, long X0, long X1) Box(long h, long w, double lam, Random rng)
    {
        var cut = Math.Sqrt(1.0 - lam);
        long ch = (long)(h * cut), cw = (long)(w * cut);
        long cy = rng.NextInt64(h), cx = rng.NextInt64(w);
        return (Math.Clamp(cy - ch / 2, 0, h), Math.Clamp(cy + ch / 2, 0, h), Math.Clamp(cx - cw / 2, 0, w), Math.Clamp(cx + cw / 2, 0, w));
    }
}
