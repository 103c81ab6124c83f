namespace H2T.Data;

/// <summary>
/// A class-balanced validation set that never touches the test set. For a long-tailed version of a balanced set it
/// comes from the training images the long-tail cut left unused; a class with too few of those (the head class keeps
/// all of its images) makes up the shortfall from its own training images, which are then removed from training
/// (at most half of them) and reported in <see cref="HeldOutFromTraining"/>.
/// </summary>
public sealed record ValidationSplit(int[] Train, int[] Validation, int[] HeldOutFromTraining, int[] FromUnused)
{
    /// <summary>Salt on the long-tail seed, so the validation draw is its own stream.</summary>
    const uint Salt = 0x9e3779b9;

    /// <param name="labels">Labels of the full (balanced) training split.</param>
    /// <param name="selected">Indices the long-tail cut kept, in their training order.</param>
    public static ValidationSplit Build(IReadOnlyList<int> labels, int[] selected, int numClasses, int perClass,
        int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(selected);
        if (perClass < 1) throw new ArgumentOutOfRangeException(nameof(perClass), perClass,
            "validation images per class must be >= 1");
        var kept = new bool[labels.Count];
        foreach (var i in selected) kept[i] = true;
        var unused = new List<int>[numClasses];
        var trainOf = new List<int>[numClasses];
        for (int c = 0; c < numClasses; c++) { unused[c] = []; trainOf[c] = []; }
        for (int i = 0; i < labels.Count; i++)
            if (!kept[i]) unused[labels[i]].Add(i);
        foreach (var i in selected) trainOf[labels[i]].Add(i);

        var rng = new NumpyRandom(unchecked((uint)seed ^ Salt));
        var validation = new List<int>(perClass * numClasses);
        var removed = new HashSet<int>();
        var heldOut = new int[numClasses];
        var fromUnused = new int[numClasses];
        for (int c = 0; c < numClasses; c++)
        {
            var pool = unused[c].ToArray();
            rng.Shuffle<int>(pool);
            int take = Math.Min(perClass, pool.Length);
            validation.AddRange(pool.AsSpan(0, take).ToArray());
            fromUnused[c] = take;
            int shortfall = perClass - take;
            if (shortfall <= 0) continue;
            var own = trainOf[c].ToArray();
            rng.Shuffle<int>(own);
            int hold = Math.Min(shortfall, own.Length / 2);
            for (int k = 0; k < hold; k++) { validation.Add(own[k]); removed.Add(own[k]); }
            heldOut[c] = hold;
        }
        var train = removed.Count == 0 ? selected : selected.Where(i => !removed.Contains(i)).ToArray();
        return new ValidationSplit(train, validation.ToArray(), heldOut, fromUnused);
    }

    /// <summary>Where a fixed validation split came from (a manifest's val.csv), for <see cref="Describe"/>; null
    /// for one built here. Its indices then count the training images first, then the validation images.</summary>
    public string? Origin { get; init; }

    /// <summary>One line for reports: where the validation images came from.</summary>
    public string Describe(IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        if (Origin is not null) return $"validation: {Validation.Length} images, {Origin}";
        var held = Enumerable.Range(0, HeldOutFromTraining.Length).Where(c => HeldOutFromTraining[c] > 0)
            .Select(c => $"{classNames[c]} {HeldOutFromTraining[c]}").ToList();
        return $"validation: {Validation.Length} images, {FromUnused.Sum()} from training images the long-tail cut " +
            $"left unused" +
               (held.Count == 0 ? "" :
                   $", {HeldOutFromTraining.Sum()} held out of training ({string.Join(", ", held)})");
    }
}
