using System.Globalization;

namespace H2T.Settings;

/// <summary>A method's own setting (a loss's, a stage-II method's): its config key and what it means, default included.
/// The method declares it in its table row, so the binder, the check and <c>h2t info</c> know it without another
/// file.</summary>
public sealed record MethodOption(string Key, string Meaning);

/// <summary>A method's options as a config carries them (key to value text) and how a method reads them: the method's
/// default when absent, a <see cref="ConfigException"/> naming the key when bad.</summary>
public static class MethodOptions
{
    public static double Number(IReadOnlyDictionary<string, string>? options, string key, double fallback, Func<double,
        bool> valid, string expected)
    {
        ArgumentNullException.ThrowIfNull(valid);
        if (options is null || !options.TryGetValue(key, out var text)) return fallback;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture,
            out var v) && double.IsFinite(v) && valid(v)
            ? v : throw new ConfigException($"{key} must be {expected}, got '{text}'", key);
    }

    public static bool Switch(IReadOnlyDictionary<string, string>? options, string key, bool fallback)
    {
        if (options is null || !options.TryGetValue(key, out var text)) return fallback;
        return Switches.Table.TryParse(text,
            out var on) ? on : throw new ConfigException($"{key} must be true or false, got '{text}'", key);
    }

    /// <summary>The options with one more (a later value wins).</summary>
    public static IReadOnlyDictionary<string, string> With(IReadOnlyDictionary<string, string>? options, string key,
        string value) =>
        new Dictionary<string, string>(options ?? new Dictionary<string, string>(),
            StringComparer.Ordinal) { [key] = value };

    /// <summary>Refuses an option that none of <paramref name="allowed"/> is (another method's).</summary>
    public static void CheckKnown(IReadOnlyDictionary<string, string>? options, IReadOnlyCollection<string> allowed,
        string owner)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        foreach (var key in (options ?? new Dictionary<string, string>()).Keys)
            if (!allowed.Contains(key))
                throw new ConfigException(
                    $"{key} is an option of another method; {owner} " +
                    $"take{(owner.Contains(" and ", StringComparison.Ordinal) ? "" : "s")} " +
                                          (allowed.Count == 0 ? "none" : string.Join(", ", allowed)), key);
    }
}
