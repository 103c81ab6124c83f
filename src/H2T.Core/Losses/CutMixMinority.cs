using static TorchSharp.torch;

namespace H2T.Losses;

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
            throw new ArgumentException(
                $"batches differ in shape: [{string.Join(", ", majority.shape)}] and " +
                $"[{string.Join(", ", minority.shape)}]");
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
        return (Math.Clamp(cy - ch / 2, 0, h), Math.Clamp(cy + ch / 2, 0, h), Math.Clamp(cx - cw / 2, 0, w),
            Math.Clamp(cx + cw / 2, 0, w));
    }
}
