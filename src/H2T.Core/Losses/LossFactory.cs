using H2T.Settings;

namespace H2T.Losses;

/// <summary>The one place where a loss name becomes a loss object: an explicit table, no reflection.</summary>
public static class LossFactory
{
    delegate ClassificationLoss Builder(LossConfig config, IReadOnlyList<int> counts, ClassWeighting weighting);

    /// <summary>A loss: its name, how it is built, and (for a loss that declares them) its own options and their
    /// check.</summary>
    sealed record Row(string Name, Builder Build, IReadOnlyList<MethodOption>? Options = null,
        Action<IReadOnlyDictionary<string, string>?>? Check = null);

    static readonly Row[] Table =
    [
        new("ce", (c, n, w) => new CrossEntropyLoss(n, w)),
        new("cb-ce", (c, n, w) => new CrossEntropyLoss(n, w)),
        new("focal", (c, n, w) => new FocalLoss(n, c.FocalGamma, w)),
        new("cb-focal", (c, n, w) => new FocalLoss(n, c.FocalGamma, w)),
        new("bsce", (c, n, w) => new LogitAdjustedLoss(n, 1.0, w)),
        new("logit-adjust", (c, n, w) => new LogitAdjustedLoss(n, c.LogitAdjustTau, w)),
        new("ldam", (c, n, w) => new LdamLoss(n, c.LdamMaxMargin, c.LdamScale, w)),
        new("las", (c, n, w) => new LabelAwareSmoothingLoss(n, c.SmoothHead, c.SmoothTail,
            LabelAwareSmoothingLoss.ParseShape(c.SmoothShape), c.SmoothPower, w)),
        new("gcl", (c, n, w) => new GclLoss(n, c.GclNoiseMul, c.GclScale, c.GclMaxMargin, c.GclFocalGamma, w)),
        new("ride", (c, n, w) => new RideLoss(n, c.LdamMaxMargin, c.LdamScale, c.RideDiversityFactor,
            c.RideDiversityTemperature, c.RideReweightFactor, w)),
        new("reslt", (c, n, w) =>
        {
            if (!w.IsNone) throw new ArgumentException("the ResLT loss takes no class re-weighting (no drw, no cb-)");
            var (m, t) = ResLtLoss.DefaultStarts(n.Count);
            return new ResLtLoss(n, c.ResLtBeta, c.ResLtMediumStart < 0 ? m : c.ResLtMediumStart,
                c.ResLtTailStart < 0 ? t : c.ResLtTailStart);
        }),
        new("vs", (c, n, w) => VsLoss.From(c.Options, n, w), VsLoss.Options, o => VsLoss.Read(o)),
    ];

    /// <summary>Spellings used by the reference codebases' configs and flags (matched case-insensitively).</summary>
    static readonly Dictionary<string, string> AliasTable = new(StringComparer.OrdinalIgnoreCase)
    {
        ["CrossEntropy"] = "ce",
        ["cross-entropy"] = "ce",
        ["CB"] = "cb-ce",
        ["ClassBalanced"] = "cb-ce",
        ["BS"] = "bsce",
        ["BalancedSoftmax"] = "bsce",
        ["balanced-softmax"] = "bsce",
        ["LA"] = "logit-adjust",
        ["LogitAdjust"] = "logit-adjust",
        ["LogitAdjustment"] = "logit-adjust",
        ["LabelAwareSmoothing"] = "las",
        ["MisLAS"] = "las",
        // The class names the reference configs write in loss.type.
        ["CrossEntropyLoss"] = "ce",
        ["FocalLoss"] = "focal",
        ["LDAMLoss"] = "ldam",
        ["BalancedSoftmaxLoss"] = "bsce",
        ["BalancedSoftmaxCE"] = "bsce",
        ["LabelAwareSmoothingLoss"] = "las",
        ["GCLLoss"] = "gcl",
        ["RIDELoss"] = "ride",
        ["ResLTLoss"] = "reslt",
        ["ResLoss"] = "reslt",
        ["VSLoss"] = "vs",
    };

    /// <summary>The canonical loss types.</summary>
    public static IReadOnlyList<string> CanonicalNames { get; } = Table.Select(t => t.Name).ToArray();

    /// <summary>Every accepted type name: the canonical ones first, then the aliases (all case-insensitive).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. CanonicalNames, .. AliasTable.Keys];

    /// <summary>Maps a name or alias (any case) to its canonical name, or null when unknown.</summary>
    public static string? Resolve(string? type)
    {
        if (string.IsNullOrWhiteSpace(type))
            return null;
        var t = type.Trim();
        if (AliasTable.TryGetValue(t, out var canonical))
            return canonical;
        return CanonicalNames.FirstOrDefault(n => string.Equals(n, t, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Every option key a loss declares (the binder accepts them as config keys and overrides).</summary>
    public static IReadOnlyList<string> OptionKeys { get; } = [.. Table.SelectMany(t => t.Options ?? []).Select(o =>
        o.Key)];

    /// <summary>A config's loss options: each must be one the chosen loss declares, and its value right.</summary>
    public static void CheckOptions(LossConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var row = Resolve(config.Type) is { } name ? Array.Find(Table, t => t.Name == name) : null;
        if (row is null) return; // the name check reports it
        MethodOptions.CheckKnown(config.Options, (row.Options ?? []).Select(o => o.Key).ToList(), $"loss '{row.Name}'");
        row.Check?.Invoke(config.Options);
    }

    /// <summary>A line per loss with options, for <c>h2t info</c>.</summary>
    public static IEnumerable<string> DescribeOptions() =>
        Table.Where(t => t.Options is { Count: > 0 }).Select(t =>
            $"loss {t.Name}: {string.Join(", ", t.Options!.Select(o => $"{o.Key}: {o.Meaning}"))}");

    /// <summary>Builds the loss named by <c>config.Type</c>; unknown types throw an ArgumentException listing the valid
    /// names.</summary>
    public static ClassificationLoss Create(LossConfig config, IReadOnlyList<int> classCounts)
    {
        ArgumentNullException.ThrowIfNull(config);
        LossChecks.Counts(classCounts);
        var name = Resolve(config.Type)
            ?? throw new ArgumentException(
                $"unknown loss type '{config.Type}'; valid: {string.Join(", ", CanonicalNames)} (aliases: " +
                    $"{string.Join(", ", AliasTable.Keys)})",
                nameof(config));
        if (config.DrwStartEpoch < -1)
            throw new ArgumentOutOfRangeException(nameof(config), config.DrwStartEpoch,
                "DrwStartEpoch must be -1 (off) or >= 0");
        var weighting = config.DrwStartEpoch >= 0
            ? ClassWeighting.ClassBalanced(classCounts, config.CbBeta, config.DrwStartEpoch)
            : name.StartsWith("cb-", StringComparison.Ordinal)
                ? ClassWeighting.ClassBalanced(classCounts, config.CbBeta)
                : ClassWeighting.None;
        return Array.Find(Table, t => t.Name == name)!.Build(config, classCounts, weighting);
    }
}
