using System.Globalization;

namespace H2T.Settings;

/// <summary>One setting a sweep varied for a member: the config key and the value as written.</summary>
public sealed record SweptSetting(string Key, string Value);

/// <summary>One value of a swept option and how it sets a member's config (the binder's own key, applied).</summary>
public sealed record SweptValue(string Text, Func<StageTwoConfig, StageTwoConfig> Apply);

/// <summary>A stage-II option a sweep varies besides rho (<c>--sweep feature_mixup.alpha=0.2,0.4</c>).</summary>
public sealed record SweptOption(string Key, IReadOnlyList<SweptValue> Values);

/// <summary>One member of a sweep: what it varies and its whole config.</summary>
public sealed record SweepPoint(IReadOnlyList<SweptSetting> Swept, StageTwoConfig Config)
{
    /// <summary>A member's name: its swept settings (key=value, joined), or its rho when nothing was swept.</summary>
    public static string LabelOf(IReadOnlyList<SweptSetting> swept, StageTwoConfig config)
    {
        ArgumentNullException.ThrowIfNull(swept);
        ArgumentNullException.ThrowIfNull(config);
        return swept.Count == 0
            ? string.Create(CultureInfo.InvariantCulture, $"rho={config.Rho:0.###}")
            : string.Join(", ", swept.Select(s => $"{s.Key}={s.Value}"));
    }

    public string Label => LabelOf(Swept, Config);
}

/// <summary>A stage-II sweep: one <see cref="StageTwoConfig"/> trained for every rho in <see cref="Rhos"/> and every
/// combination of the <see cref="Options"/>' values at once. <see cref="ValidationPerClass"/> adds a validation split
/// when stage I had none.</summary>
public sealed record SweepConfig(StageTwoConfig StageTwo, double[] Rhos, int ValidationPerClass = 100)
{
    /// <summary>Options varied besides rho; the members are their product with the rho values.</summary>
    public IReadOnlyList<SweptOption> Options { get; init; } = [];

    /// <summary>The value checks, each member's included; <c>H2T.Configuration.RunConfigChecks.Validate</c> adds the
    /// names.</summary>
    public void ValidateValues()
    {
        // The config's own values, its H2T value included (an H2T: 1.5 in a file is an error, swept or not).
        StageTwo.ValidateValues();
        if (Rhos.Length == 0) throw new ConfigException("rho: the sweep needs at least one value", "sweep.rho");
        foreach (var r in Rhos) StageTwoConfig.CheckRho(r, "sweep.rho");
        if (Rhos.Distinct().Count() != Rhos.Length) throw new ConfigException(
            $"rho: values repeat in [{string.Join(", ", Rhos)}]", "sweep.rho");
        if (ValidationPerClass < 0) throw new ConfigException($"val_per_class must be >= 0, got {ValidationPerClass}",
            "val_per_class");
        foreach (var o in Options)
        {
            if (o.Values.Count == 0) throw new ConfigException($"sweep.{o.Key}: no values", $"sweep.{o.Key}");
            if (o.Values.Select(v => v.Text).Distinct(StringComparer.Ordinal).Count() != o.Values.Count)
                throw new ConfigException(
                    $"sweep.{o.Key}: values repeat in [{string.Join(", ", o.Values.Select(v => v.Text))}]",
                    $"sweep.{o.Key}");
        }
        var points = Points();
        var key = Options.Count > 0 ? $"sweep.{Options[0].Key}" : "sweep.rho";
        foreach (var p in points)
        {
            try { p.Config.ValidateValues(); }
            catch (ConfigException e) { throw new ConfigException($"sweep member {p.Label}: {e.Message}", key); }
            var differ = points[0].Config.SharedDifferences(p.Config);
            if (differ.Count > 0)
                throw new ConfigException(
                    $"{string.Join(", ", differ)} cannot be swept: the members share the feature source and the " +
                    $"epoch loop, " +
                                          $"so only their own settings vary (rho, fusion and its options, " +
                                              $"classifier, loss, lr, weight decay)", key);
        }
    }

    /// <summary>Every member: rho outermost, then each option in the order given.</summary>
    public IReadOnlyList<SweepPoint> Points()
    {
        var points = Rhos.Select(r => new SweepPoint(
            Options.Count == 0 || Rhos.Length > 1 ? [new SweptSetting("rho", r.ToString("0.###",
                CultureInfo.InvariantCulture))] : [],
            StageTwo with { Rho = r })).ToList();
        foreach (var o in Options)
            points = [.. points.SelectMany(p => o.Values.Select(v => new SweepPoint([.. p.Swept, new SweptSetting(o.Key,
                v.Text)], v.Apply(p.Config))))];
        return points;
    }

    /// <summary>The values a sweep tries when none are given: 0 to 1 in steps of 0.1.</summary>
    public static IReadOnlyList<double> DefaultRhos { get; } = ParseRhos("0:1:0.1");

    /// <summary>rho values: "0:1:0.1" (start:stop:step, stop included) or "0,0.25,0.5" (<see
    /// cref="ValueGrid"/>).</summary>
    public static double[] ParseRhos(string spec) => ValueGrid.Parse(spec, "rho");

    public static string FolderName(double rho) => string.Create(CultureInfo.InvariantCulture, $"rho{rho:0.###}");

    /// <summary>A member's folder: rho{value} for a rho sweep (as before), key=value joined by '+' otherwise.</summary>
    public static string FolderName(SweepPoint point)
    {
        ArgumentNullException.ThrowIfNull(point);
        if (point.Swept.Count == 1 && point.Swept[0].Key == "rho") return FolderName(point.Config.Rho);
        var name = string.Join("+", point.Swept.Select(s => $"{s.Key}={s.Value}"));
        foreach (var c in Path.GetInvalidFileNameChars()) name = name.Replace(c, '_');
        return name.Length == 0 ? FolderName(point.Config.Rho) : name;
    }
}
