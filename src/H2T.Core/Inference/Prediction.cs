namespace H2T.Inference;

/// <summary>One class and its softmax probability.</summary>
public sealed record ClassScore(int Index, string Name, float Probability);

/// <summary>The top-k classes of one image, most probable first.</summary>
public sealed record Prediction(IReadOnlyList<ClassScore> Top)
{
    public ClassScore Best => Top[0];

    /// <summary>Softmax (in double, max-subtracted) over one row of logits, then the k best; ties keep the lower index,
    /// as torch.topk / argmax do.</summary>
    public static Prediction FromLogits(ReadOnlySpan<float> logits, IReadOnlyList<string> classNames, int topK)
    {
        if (logits.Length != classNames.Count) throw new ArgumentException(
            $"{logits.Length} logits for {classNames.Count} classes");
        double max = double.NegativeInfinity;
        foreach (var v in logits) max = Math.Max(max, v);
        var p = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] = Math.Exp(logits[i] - max);
        int k = Math.Clamp(topK, 1, logits.Length);
        var order = Enumerable.Range(0, logits.Length).ToArray();
        var keys = logits.ToArray();
        // Stable sort by descending logit: equal logits keep index order.
        Array.Sort(order, (a, b) => keys[b] != keys[a] ? keys[b].CompareTo(keys[a]) : a.CompareTo(b));
        return new Prediction([.. order.Take(k).Select(i => new ClassScore(i, classNames[i], (float)(p[i] / sum)))]);
    }
}
