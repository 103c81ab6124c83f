using static TorchSharp.torch;

namespace H2T.Fusion;

/// <summary>
/// H2T (poster eq. 1): F~ = M (x) F_tail + (1 - M) (x) F_head, where M is 0 on a random set S of floor(rho * C)
/// channels drawn once per batch and 1 elsewhere. The fused map keeps the tail sample's label.
/// Implemented as a channel select (torch.where), so every value comes bit for bit from one of the two maps.
/// </summary>
public sealed class HeadToTailFusion : IStageTwoMethod
{
    public HeadToTailFusion(double rho)
    {
        if (double.IsNaN(rho) || rho < 0 || rho > 1)
            throw new ArgumentOutOfRangeException(nameof(rho), rho, "the fusion ratio rho must lie in [0, 1]");
        Rho = rho;
    }

    public double Rho { get; }

    /// <summary>floor(rho * C) of the double product, as the reference's int(rho * C) (so 0.29 * 100 gives
    /// 28).</summary>
    public int HeadChannelCount(int channels) => (int)Math.Floor(Rho * channels);

    /// <summary>Draws the channel set S (sorted) with a partial Fisher-Yates shuffle from <paramref
    /// name="rng"/>.</summary>
    public int[] DrawChannels(int channels, Random rng)
    {
        int k = HeadChannelCount(channels);
        var pool = Enumerable.Range(0, channels).ToArray();
        for (int i = 0; i < k; i++)
        {
            int j = rng.Next(i, channels);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        var chosen = pool[..k];
        Array.Sort(chosen);
        return chosen;
    }

    /// <summary>Fuses with a fresh draw; returns the fused map and the channels taken from the head side.</summary>
    public (Tensor Fused, int[] HeadChannels) Fuse(Tensor tail, Tensor head, Random rng)
    {
        var channels = DrawChannels(CheckShapes(tail, head), rng);
        return (Fuse(tail, head, channels), channels);
    }

    /// <summary>
    /// Fuses a multi-expert map whose channels are <paramref name="experts"/> equal groups (one per expert or branch,
    /// as the RIDE and ResLT backbones return them): each group gets its own draw of floor(rho * C/E) channels, in
    /// group order from <paramref name="rng"/>. The same result as <see cref="FuseExperts"/> on the split maps.
    /// </summary>
    public (Tensor Fused, int[] HeadChannels) Fuse(Tensor tail, Tensor head, Random rng, int experts)
    {
        if (experts == 1) return Fuse(tail, head, rng);
        int c = CheckShapes(tail, head);
        if (experts < 1 || c % experts != 0)
            throw new ArgumentException($"{c} feature channels do not split into {experts} expert groups",
                nameof(experts));
        int width = c / experts;
        var channels = Enumerable.Range(0, experts).SelectMany(e => DrawChannels(width,
            rng).Select(ch => ch + e * width)).ToArray();
        return (Fuse(tail, head, channels), channels);
    }

    /// <summary>
    /// Multi-expert form (RIDE, ResLT): each expert's feature map is fused with its own channel draw, in expert order
    /// from the same generator.
    /// </summary>
    public (Tensor[] Fused, int[][] HeadChannels) FuseExperts(IReadOnlyList<Tensor> tails, IReadOnlyList<Tensor> heads,
        Random rng)
    {
        if (tails.Count != heads.Count || tails.Count == 0)
            throw new ArgumentException(
                $"expected one head map per tail map, got {tails.Count} tail and {heads.Count} head maps");
        var fused = new Tensor[tails.Count];
        var channels = new int[tails.Count][];
        for (int e = 0; e < tails.Count; e++) (fused[e], channels[e]) = Fuse(tails[e], heads[e], rng);
        return (fused, channels);
    }

    /// <summary>Replaces <paramref name="headChannels"/> of the tail map by the head map's (dim 1).</summary>
    public static Tensor Fuse(Tensor tail, Tensor head, int[] headChannels)
    {
        int c = CheckShapes(tail, head);
        var maskHost = new bool[c];
        foreach (var ch in headChannels)
        {
            if (ch < 0 || ch >= c) throw new ArgumentOutOfRangeException(nameof(headChannels), ch,
                $"channel index outside [0, {c})");
            if (maskHost[ch]) throw new ArgumentException($"channel {ch} appears twice in the head channel set",
                nameof(headChannels));
            maskHost[ch] = true;
        }
        if (headChannels.Length == 0) return tail.alias();
        if (headChannels.Length == c) return head.alias();
        using var scope = NewDisposeScope();
        var shape = new long[tail.dim()];
        Array.Fill(shape, 1L);
        shape[1] = c;
        var mask = tensor(maskHost, device: tail.device).view(shape);
        return where(mask, head, tail).MoveToOuterDisposeScope();
    }

    static int CheckShapes(Tensor tail, Tensor head)
    {
        if (tail.dim() < 2) throw new ArgumentException(
            $"H2T fusion expects N x C (x H x W) feature maps, got shape [{string.Join(", ", tail.shape)}]");
        if (!tail.shape.SequenceEqual(head.shape))
            throw new ArgumentException(
                $"H2T fusion needs equal shapes: tail [{string.Join(", ", tail.shape)}] vs head " +
                $"[{string.Join(", ", head.shape)}]; use equal batch sizes on both sides");
        if (tail.dtype != head.dtype) throw new ArgumentException(
            $"H2T fusion needs equal dtypes: {tail.dtype} vs {head.dtype}");
        return (int)tail.shape[1];
    }

    public bool UsesHeadSide => true;

    /// <summary>One bit per channel, the same at every position: pooling the fused map is fusing the pooled
    /// vectors.</summary>
    public bool CommutesWithPooling => true;

    /// <summary>The stage-II seam: the fused map keeps the tail labels.</summary>
    public AugmentedBatch Augment(Tensor tailMap, Tensor? headMap, Tensor tailLabels, Tensor? headLabels, Random rng,
        int experts) =>
        new(Fuse(tailMap, headMap ?? throw new ArgumentException("H2T needs the head-side batch", nameof(headMap)), rng,
            experts).Fused);

    public override string ToString() => $"HeadToTailFusion(rho={Rho})";
}
