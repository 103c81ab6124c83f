namespace H2T.Settings;

/// <summary>Head / Medium / Tail (Many / Medium / Few) class groups for per-group accuracy.</summary>
public sealed record ClassGroups(int[] Head, int[] Medium, int[] Tail)
{
    /// <summary>By training counts: more than 100 images head, 20..100 medium, fewer than 20 tail.</summary>
    public static ClassGroups FromCounts(IReadOnlyList<int> trainCounts)
    {
        ArgumentNullException.ThrowIfNull(trainCounts);
        var idx = Enumerable.Range(0, trainCounts.Count);
        return new(idx.Where(c => trainCounts[c] > 100).ToArray(),
            idx.Where(c => trainCounts[c] is >= 20 and <= 100).ToArray(),
            idx.Where(c => trainCounts[c] < 20).ToArray());
    }

    /// <summary>By index ranges: head [0,headEnd), medium [headEnd,mediumEnd), tail [mediumEnd,numClasses).</summary>
    public static ClassGroups FromRanges(int numClasses, int headEnd, int mediumEnd)
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses,
            "expected at least one class");
        if (headEnd < 0 || headEnd > mediumEnd || mediumEnd > numClasses)
            throw new ArgumentException(
                $"class group ranges need 0 <= headEnd ({headEnd}) <= mediumEnd ({mediumEnd}) <= numClasses " +
                $"({numClasses})");
        return new(Enumerable.Range(0, headEnd).ToArray(),
            Enumerable.Range(headEnd, mediumEnd - headEnd).ToArray(),
            Enumerable.Range(mediumEnd, numClasses - mediumEnd).ToArray());
    }

    /// <summary>10 classes: 0-2 / 3-6 / 7-9 (by counts the tail of a 10-class LT set would be empty); otherwise by
    /// counts.</summary>
    public static ClassGroups Default(IReadOnlyList<int> trainCounts)
    {
        ArgumentNullException.ThrowIfNull(trainCounts);
        return trainCounts.Count == 10 ? FromRanges(10, 3, 7) : FromCounts(trainCounts);
    }

    /// <summary>"head", "medium" or "tail"; throws for a class in no group.</summary>
    public string GroupOf(int cls)
    {
        if (Array.IndexOf(Head, cls) >= 0) return "head";
        if (Array.IndexOf(Medium, cls) >= 0) return "medium";
        if (Array.IndexOf(Tail, cls) >= 0) return "tail";
        throw new ArgumentOutOfRangeException(nameof(cls), cls, "class is in no group");
    }

    public int NumClasses => Head.Length + Medium.Length + Tail.Length;
}
