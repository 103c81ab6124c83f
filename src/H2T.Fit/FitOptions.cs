using System.Globalization;
using H2T.Configuration;
using H2T.Settings;

namespace H2T.Fit;

/// <summary>How much of the budget a plan may spend on learning: <c>fast</c> trains only the classifier on the frozen
/// network (minutes); <c>best</c> fine-tunes as much of the network as the time limit allows.</summary>
public enum FitPreset { Fast, Best }

/// <summary>What the backbone learns in a plan: nothing (a frozen network, LIFT's linear probe), SSF's scale and shift
/// (Lian et al., NeurIPS 2022), the last stage, or everything.</summary>
public enum FitTuning { Frozen, Ssf, LastStage, Full }

/// <summary>
/// Everything a user may choose about <c>h2t fit</c>. Null means "the planner decides, and says why". Every field is
/// one key of <see cref="FitKeys"/>: a flag, a <c>fit:</c> key in YAML and a <c>fit.KEY=VALUE</c> override alike.
/// </summary>
public sealed record FitOptions
{
    /// <summary>The user's images: a folder (<c>train/</c> with or without <c>test/</c>, or class folders) or a
    /// <c>path,label</c> list file.</summary>
    public string Data { get; init; } = "";
    /// <summary>Where everything goes: data/, plan.json, stage1/, stage2/, model.onnx, MODEL_CARD.md,
    /// summary.json.</summary>
    public string Out { get; init; } = "fit";
    public TimeSpan TimeLimit { get; init; } = TimeSpan.FromMinutes(20);
    public FitPreset Preset { get; init; } = FitPreset.Best;
    /// <summary>The pretrained start (any name <c>--pretrained</c> takes); the NuGet ResNet-18 runs offline.</summary>
    public string Pretrained { get; init; } = "mlnet:resnet18";
    /// <summary>The architecture the weights fill; null: the one the default weights are for.</summary>
    public string? Backbone { get; init; }
    public FitTuning? Tuning { get; init; }
    /// <summary>The training image side; null: planned (the images' own size when small, else 112 or 224).</summary>
    public int? ImageSize { get; init; }
    public int? Epochs { get; init; }
    /// <summary>fp32, bf16 or auto (this CPU's measured choice).</summary>
    public string Precision { get; init; } = "auto";
    public int BatchSize { get; init; } = 64;
    public double? Lr { get; init; }
    /// <summary>The H2T ratios tried in stage II beside rho = 0; validation chooses among them and stage I's own
    /// classifier.</summary>
    public IReadOnlyList<double> Rhos { get; init; } = [0.1, 0.2, 0.3, 0.5];
    public int Seed { get; init; }
    /// <summary>Images over this many pixels are refused before they are decoded (PIL's decompression-bomb
    /// limit).</summary>
    public long MaxPixels { get; init; } = 89_478_485;
    /// <summary>Undecodable files are named and skipped instead of stopping the job.</summary>
    public bool SkipUndecodable { get; init; }
    /// <summary>Resume the job in <see cref="Out"/>: finished steps are kept, the plan is not measured again.</summary>
    public bool Resume { get; init; }

    /// <summary>The checks no single key can make.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Data))
            throw new ConfigException("data: expected a folder of images or a path,label list file", "data");
        if (TimeLimit < TimeSpan.FromMinutes(1))
            throw new ConfigException($"time_limit: expected at least 1m, got {FitKeys.Duration(TimeLimit)}",
                "time_limit");
        if (ImageSize is < 16) throw new ConfigException($"image_size: expected >= 16, got {ImageSize}", "image_size");
        if (Epochs is < 1) throw new ConfigException($"epochs: expected >= 1, got {Epochs}", "epochs");
        if (BatchSize < 2) throw new ConfigException($"batch_size: expected >= 2, got {BatchSize}", "batch_size");
        if (Lr is not null and not > 0) throw new ConfigException($"lr: expected > 0, got {Lr}", "lr");
        if (MaxPixels < 1) throw new ConfigException($"max_pixels: expected >= 1, got {MaxPixels}", "max_pixels");
        foreach (var r in Rhos) StageTwoConfig.CheckRho(r, "rhos");
    }
}

/// <summary>
/// The one name table of <c>h2t fit</c>: each key's flag, its YAML key under <c>fit:</c>, its override
/// (<c>fit.KEY=VALUE</c>) and what it sets. Lowest precedence first: the defaults, the file, the overrides, the
/// flags typed.
/// </summary>
public static class FitKeys
{
    /// <param name="Flag">The command-line flag; null for the data argument.</param>
    public sealed record Key(string Name, string? Flag, string Help, Func<FitOptions, ConfigEntry, FitOptions> Apply);

    public static NameTable<FitPreset> Presets { get; } = new("preset", [("fast", FitPreset.Fast),
        ("best", FitPreset.Best)]);

    public static NameTable<FitTuning> Tunings { get; } = new("tuning", [("frozen", FitTuning.Frozen),
        ("ssf", FitTuning.Ssf), ("last-stage", FitTuning.LastStage), ("layer4", FitTuning.LastStage),
        ("full", FitTuning.Full)], "frozen, ssf, last-stage, full");

    // Before All: static members initialise in text order.
    static NameTable<string> Precisions { get; } = new("precision", [("fp32", "fp32"), ("bf16", "bf16"),
        ("auto", "auto")]);

    public static IReadOnlyList<Key> All { get; } =
    [
        new("data", null, "the images: train/[test/] folders, class folders, or a path,label list file",
            (o, e) => o with { Data = e.String() }),
        new("out", "--out", "the job's folder", (o, e) => o with { Out = e.String() }),
        new("time_limit", "--time-limit", "the whole job's budget, e.g. 10m, 1h30m, 90s (default 20m)",
            (o, e) => o with { TimeLimit = ParseDuration(e) }),
        new("preset", "--preset", "fast (frozen network) or best (as much fine-tuning as fits; default best)",
            (o, e) => o with { Preset = Named(e, Presets) }),
        new("pretrained", "--pretrained", "the pretrained start (default mlnet:resnet18, offline)",
            (o, e) => o with { Pretrained = e.String() }),
        new("backbone", "--backbone", "the architecture the weights fill (default the weights' own)",
            (o, e) => o with { Backbone = e.StringOrNull() }),
        new("tuning", "--tuning", "what the backbone learns: frozen, ssf, last-stage, full (default planned)",
            (o, e) => o with { Tuning = e.IsNull ? null : Named(e, Tunings) }),
        new("image_size", "--image-size", "training image side in pixels (default planned)",
            (o, e) => o with { ImageSize = e.IsNull ? null : e.Int() }),
        new("epochs", "--epochs", "stage I epochs (default planned to fill the budget)",
            (o, e) => o with { Epochs = e.IsNull ? null : e.Int() }),
        new("precision", "--precision", "fp32, bf16 or auto (default auto: this CPU's measured choice)",
            (o, e) => o with { Precision = Named(e, Precisions) }),
        new("batch_size", "--batch-size", "training batch size (default 64)", (o, e) => o with { BatchSize = e.Int() }),
        new("lr", "--lr", "stage I learning rate (default planned)",
            (o, e) => o with { Lr = e.DoubleOrNull() }),
        new("rhos", "--rho", "H2T ratios tried in stage II beside rho 0 (default 0.1,0.2,0.3,0.5)",
            (o, e) => o with { Rhos = e.Items is { } xs
                ? [.. xs.Select(x => new ConfigEntry(e.Key, x, null, e.Where).Double())]
                : ValueGrid.Parse(e.String(), "rho") }),
        new("seed", "--seed", "the training seed (default 0)", (o, e) => o with { Seed = e.Int() }),
        new("max_pixels", "--max-pixels", "refuse images over this many pixels before decoding (default 89478485)",
            (o, e) => o with { MaxPixels = Long(e) }),
        new("skip_undecodable", "--skip-undecodable", "name and skip undecodable files instead of stopping",
            (o, e) => o with { SkipUndecodable = e.Bool() }),
    ];

    static readonly Dictionary<string, Key> ByName = All.ToDictionary(k => k.Name, StringComparer.Ordinal);
    static readonly Dictionary<string, Key> ByFlag = All.Where(k => k.Flag is not null)
        .ToDictionary(k => k.Flag!, StringComparer.Ordinal);

    /// <summary>The key a flag sets (null: not one of fit's).</summary>
    public static string? FlagKey(string flag) => ByFlag.TryGetValue(flag, out var k) ? k.Name : null;

    /// <summary>
    /// Binds entries in order (later wins). A file's keys sit under <c>fit:</c> (so <c>fit.time_limit</c> once
    /// flattened); an override names them the same way; a flag's entry carries the bare key. An unknown key is an
    /// error at its line, naming the keys there are.
    /// </summary>
    public static FitOptions Bind(IEnumerable<ConfigEntry> entries, FitOptions? start = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var options = start ?? new FitOptions();
        foreach (var e in entries)
        {
            var name = e.Key.StartsWith("fit.", StringComparison.Ordinal) ? e.Key[4..] : e.Key;
            if (!ByName.TryGetValue(name, out var key))
                throw new ConfigException(
                    $"{e.Where}: {e.Key}: not a fit key; expected one of {string.Join(", ", All.Select(k => k.Name))}" +
                    " (under fit: in a file, fit.KEY=VALUE as an override)", e.Key);
            try { options = key.Apply(options, e); }
            catch (ArgumentException x) { throw new ConfigException($"{e.Where}: {e.Key}: {x.Message}", e.Key); }
        }
        try { options.Validate(); }
        catch (ConfigException x) when (x.Key is not null && Origin(entries, x.Key) is { } where)
        {
            throw new ConfigException($"{where}: {x.Message}", x.Key);
        }
        return options;
    }

    static string? Origin(IEnumerable<ConfigEntry> entries, string key) =>
        entries.LastOrDefault(e => e.Key == key || e.Key == "fit." + key)?.Where;

    static T Named<T>(ConfigEntry e, NameTable<T> table) =>
        table.TryParse(e.Scalar, out var v) ? v : throw e.Error($"expected {table.Expected}");

    static long Long(ConfigEntry e) =>
        long.TryParse(e.Scalar?.Replace("_", "", StringComparison.Ordinal), NumberStyles.Integer,
            CultureInfo.InvariantCulture, out var v) ? v : throw e.Error("a whole number");

    /// <summary>10m, 1h30m, 90s, 1.5h, or a bare number of minutes.</summary>
    public static TimeSpan ParseDuration(ConfigEntry e)
    {
        ArgumentNullException.ThrowIfNull(e);
        var text = e.String().Trim().ToLowerInvariant();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var minutes) && minutes > 0)
            return TimeSpan.FromMinutes(minutes);
        var total = TimeSpan.Zero;
        var m = System.Text.RegularExpressions.Regex.Match(text, @"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?" +
            @"(?:(\d+(?:\.\d+)?)s)?$");
        if (!m.Success || text.Length == 0) throw e.Error("a duration such as 10m, 1h30m or 90s");
        static double G(System.Text.RegularExpressions.Group g) =>
            g.Success ? double.Parse(g.Value, CultureInfo.InvariantCulture) : 0;
        total = TimeSpan.FromHours(G(m.Groups[1])) + TimeSpan.FromMinutes(G(m.Groups[2])) +
            TimeSpan.FromSeconds(G(m.Groups[3]));
        return total > TimeSpan.Zero ? total : throw e.Error("a duration > 0, such as 10m");
    }

    /// <summary>A duration as the flags take it: 1h05m, 12m30s, 45s.</summary>
    public static string Duration(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m"
        : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{(t.Seconds > 0 ? $"{t.Seconds:00}s" : "")}"
        : $"{Math.Max(0, (int)Math.Round(t.TotalSeconds))}s";
}
