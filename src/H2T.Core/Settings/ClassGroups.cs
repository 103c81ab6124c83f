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

    /// <summary>
    /// The groups when a dataset names none. A 10-class set whose counts fall with the class index (the long-tailed
    /// sets built here): classes 0-2 / 3-6 / 7-9, the reference's split. Otherwise the field's count rule
    /// (<see cref="FromCounts"/>) when it leaves no group empty; else, as for an own folder whose every class has
    /// more than 100 images, by count rank (<see cref="ByRank"/>). So no group is empty once there are three
    /// classes.
    /// </summary>
    public static ClassGroups Default(IReadOnlyList<int> trainCounts)
    {
        ArgumentNullException.ThrowIfNull(trainCounts);
        bool falling = Enumerable.Range(1, Math.Max(0, trainCounts.Count - 1)).All(i =>
            trainCounts[i] <= trainCounts[i - 1]);
        if (trainCounts.Count == 10 && falling) return FromRanges(10, 3, 7);
        var byCounts = FromCounts(trainCounts);
        return byCounts.Head.Length > 0 && byCounts.Medium.Length > 0 && byCounts.Tail.Length > 0 ? byCounts
            : ByRank(trainCounts);
    }

    /// <summary>
    /// By training-count rank: the most frequent 30% of the classes (rounded, at least one) head, the least frequent
    /// 30% tail, the rest medium; ties keep the class order. For 10 classes that is 3 / 4 / 3, the CIFAR-10-LT
    /// split; for 9, 3 / 3 / 3.
    /// </summary>
    public static ClassGroups ByRank(IReadOnlyList<int> trainCounts)
    {
        ArgumentNullException.ThrowIfNull(trainCounts);
        int k = trainCounts.Count;
        var order = Enumerable.Range(0, k).OrderByDescending(c => trainCounts[c]).ThenBy(c => c).ToArray();
        int head = k < 3 ? Math.Min(k, 1) : Math.Max(1, (int)Math.Round(0.3 * k, MidpointRounding.AwayFromZero));
        int tail = k < 3 ? Math.Max(0, k - 1) : head;
        int medium = k - head - tail;
        return new([.. order[..head].Order()], [.. order[head..(head + medium)].Order()],
            [.. order[(head + medium)..].Order()]);
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
