using H2T.Settings;

namespace H2T.Data;

/// <summary>Long-tailed versions of balanced training sets, as the reference codebases build them.</summary>
public static class LongTail
{
    /// <summary>Images kept per class. Exp: <c>int(nMax * (1/IF)^(i/(C-1)))</c> (computed in that form, as the
    /// reference does, so the float rounding matches); Step: nMax for the first half, <c>int(nMax/IF)</c>
    /// after.</summary>
    public static int[] Counts(int nMax, int numClasses, double imbFactor, ImbalanceType type)
    {
        if (nMax < 1) throw new ArgumentOutOfRangeException(nameof(nMax), nMax,
            "expected at least one image per class");
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses,
            "expected at least one class");
        if (!(imbFactor >= 1) || double.IsInfinity(imbFactor))
            throw new ArgumentOutOfRangeException(nameof(imbFactor), imbFactor,
                "imbalance factor must be a finite number >= 1");
        var counts = new int[numClasses];
        double f = 1.0 / imbFactor;
        for (int i = 0; i < numClasses; i++)
        {
            counts[i] = type switch
            {
                ImbalanceType.Exp => numClasses == 1 ? nMax : (int)(nMax * Math.Pow(f, i / (numClasses - 1.0))),
                ImbalanceType.Step => i < numClasses / 2 ? nMax : (int)(nMax * f),
                _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown imbalance type"),
            };
        }
        return counts;
    }

    /// <summary>
    /// numpy-identical selection: seed the legacy generator once, then for each class c in label order shuffle the
    /// indices of class c (ascending) and keep the first <c>counts[c]</c>. The result is grouped by class, in the
    /// shuffled order, exactly as the reference builds its new data array. A class with fewer images keeps all.
    /// </summary>
    public static int[] SelectIndices(IReadOnlyList<int> labels, int[] counts, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(counts);
        if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), seed, "numpy seeds are in [0, 2^32)");
        var byClass = new List<int>[counts.Length];
        for (int c = 0; c < counts.Length; c++) byClass[c] = [];
        for (int i = 0; i < labels.Count; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)counts.Length)
                throw new ArgumentException($"label {y} at index {i} is outside [0, {counts.Length})");
            byClass[y].Add(i);
        }
        var rng = new NumpyRandom((uint)seed);
        var result = new List<int>(counts.Sum());
        for (int c = 0; c < counts.Length; c++)
        {
            // np.unique skips absent classes, so the reference draws nothing for them: so do we.
            if (byClass[c].Count == 0) continue;
            var idx = byClass[c].ToArray();
            rng.Shuffle<int>(idx);
            result.AddRange(idx.AsSpan(0, Math.Min(counts[c], idx.Length)).ToArray());
        }
        return result.ToArray();
    }
}
