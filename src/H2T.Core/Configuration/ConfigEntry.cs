using System.Globalization;
using H2T.Settings;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace H2T.Configuration;

/// <summary>
/// One setting from a config file or a <c>key=value</c> override: a dotted key (nesting flattened), its value
/// (a scalar, null, or a flat list), and where it came from (<c>file:line</c> or <c>override 'k=v'</c>), so every
/// error can point at the line that caused it.
/// </summary>
public sealed record ConfigEntry(string Key, string? Scalar, IReadOnlyList<string?>? Items, string Where)
{
    public bool IsNull => Scalar is null && Items is null;

    ConfigException Bad(string expected) =>
        new($"{Where}: {Key}: expected {expected}, got {Shown}");

    string Shown => Items is { } xs ? $"[{string.Join(", ", xs)}]" : Scalar is null ? "null" : $"'{Scalar}'";

    // CA1720: the readers are named after the value type they read, as JsonElement's GetString / GetDouble are.
#pragma warning disable CA1720
    public string String()
    {
        if (Scalar is null) throw Bad("a string");
        return Scalar;
    }

    public string? StringOrNull() => Items is not null ? throw Bad("a string or null") : Scalar;

    public double Double()
    {
        if (Scalar is not null && double.TryParse(Scalar, NumberStyles.Float, CultureInfo.InvariantCulture,
            out var v) && double.IsFinite(v)) return v;
        throw Bad("a number");
    }

    public double? DoubleOrNull() => IsNull ? null : Double();

    public int Int()
    {
        if (Scalar is not null && int.TryParse(Scalar, NumberStyles.Integer, CultureInfo.InvariantCulture,
            out var v)) return v;
        throw Bad("a whole number");
    }
#pragma warning restore CA1720

    public bool Bool() => Switches.Table.TryParse(Scalar, out var on) ? on : throw Bad("true or false");

    /// <summary>A class-index range [start, end) written as a two-element list.</summary>
    public (int Start, int End) Range()
    {
        if (Items is not { Count: 2 } xs) throw Bad("a list [start, end)");
        var a = new ConfigEntry(Key, xs[0], null, Where).Int();
        var b = new ConfigEntry(Key, xs[1], null, Where).Int();
        if (a < 0 || b < a) throw Bad("0 <= start <= end");
        return (a, b);
    }

    /// <summary>Whole numbers as a list, or a single number, or a comma-separated string.</summary>
    public int[] Ints()
    {
        var raw = Items ?? (Scalar?.Split(',',
            StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => (string?)s).ToList())
            ?? throw Bad("a list of whole numbers");
        return raw.Select(x => new ConfigEntry(Key, x, null, Where).Int()).ToArray();
    }

    /// <summary>Names as a list, a single name, or a comma-separated string.</summary>
    public string[] Strings()
    {
        var raw = Items ?? Scalar?.Split(',',
            StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => (string?)s).ToList()
            ?? throw Bad("a list of names");
        if (raw.Any(string.IsNullOrWhiteSpace)) throw Bad("a list of names, none empty");
        return raw.Select(x => x!).ToArray();
    }

    public ConfigException Error(string message) => new($"{Where}: {Key}: {message}");
}

/// <summary>Reads YAML configs and <c>key=value</c> overrides into flat, located <see cref="ConfigEntry"/>
/// lists.</summary>
public static class ConfigReader
{
    public static IReadOnlyList<ConfigEntry> ReadFile(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: config file not found");
        string text;
        try { text = File.ReadAllText(path); }
        catch (IOException e) { throw new ConfigException($"{path}: cannot read config ({e.Message})"); }
        return ReadText(text, path);
    }

    public static IReadOnlyList<ConfigEntry> ReadText(string text, string name)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e)
        {
            var why = e.InnerException?.Message ?? e.Message;
            throw new ConfigException($"{name}:{e.Start.Line}:{e.Start.Column}: not valid YAML ({why})");
        }
        if (stream.Documents.Count == 0) return [];
        if (stream.Documents.Count > 1) throw new ConfigException(
            $"{name}:{stream.Documents[1].RootNode.Start.Line}: expected one YAML document, found " +
            $"{stream.Documents.Count}");
        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" }) return [];
        if (root is not YamlMappingNode map)
            throw new ConfigException(
                $"{name}:{root.Start.Line}: expected a mapping of keys to values at the top level");
        var entries = new List<ConfigEntry>();
        Flatten(map, "", name, entries);
        return entries;
    }

    /// <summary>
    /// <c>key=value</c> with a dotted key for nesting (<c>lr_scheduler.lr_factor=0.5</c>); the value is read as YAML,
    /// so
    /// <c>head_class_idx=[0,3]</c> and <c>alpha=null</c> work.
    /// </summary>
    public static ConfigEntry ReadOverride(string text)
    {
        var eq = text.IndexOf('=');
        var where = $"override '{text}'";
        if (eq <= 0) throw new ConfigException(
            $"{where}: expected key=value (dotted keys for nesting, e.g. lr_scheduler.lr_factor=0.5)");
        var key = text[..eq].Trim();
        if (key.Length == 0 || key.Split('.').Any(p => p.Length == 0)) throw new ConfigException($"{where}: empty key");
        var value = text[(eq + 1)..];
        IReadOnlyList<ConfigEntry> parsed;
        try { parsed = ReadText("v: " + value, where); }
        catch (ConfigException) { parsed = [new ConfigEntry("v", value, null, where)]; }
        if (parsed.Count != 1) throw new ConfigException(
            $"{where}: expected a single value or a flat list, got a mapping");
        return parsed[0] with { Key = key, Where = where };
    }

    static void Flatten(YamlMappingNode map, string prefix, string file, List<ConfigEntry> into)
    {
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode { Value: { Length: > 0 } name })
                throw new ConfigException($"{file}:{k.Start.Line}: expected a plain key");
            var key = prefix + name;
            var where = $"{file}:{k.Start.Line}";
            switch (v)
            {
                case YamlMappingNode m:
                    if (m.Children.Count == 0) into.Add(new ConfigEntry(key, null, null, where));
                    else Flatten(m, key + ".", file, into);
                    break;
                case YamlSequenceNode s:
                    var items = new List<string?>();
                    foreach (var item in s.Children)
                    {
                        if (item is not YamlScalarNode sc)
                            throw new ConfigException(
                                $"{file}:{item.Start.Line}: {key}: expected a flat list of values");
                        items.Add(ScalarValue(sc));
                    }
                    into.Add(new ConfigEntry(key, null, items, where));
                    break;
                case YamlScalarNode sc:
                    into.Add(new ConfigEntry(key, ScalarValue(sc), null, where));
                    break;
                default:
                    throw new ConfigException($"{where}: {key}: unsupported YAML node");
            }
        }
    }

    /// <summary>Plain null, ~ and empty are null (as in PyYAML); quoted text stays text.</summary>
    static string? ScalarValue(YamlScalarNode s) =>
        s.Style is ScalarStyle.Plain or ScalarStyle.Any && s.Value is null or "" or "~" or "null" or "Null" or "NULL" ?
            null : s.Value;
}
