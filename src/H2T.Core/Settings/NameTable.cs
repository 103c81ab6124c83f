namespace H2T.Settings;

/// <summary>
/// One concern's names (with aliases, case-insensitive) and the values they stand for: the single table a command-line
/// flag and a config key both read, so a name accepted in one is accepted in the other.
/// </summary>
public sealed class NameTable<T>(string what, IReadOnlyList<(string Name, T Value)> entries, string? expected = null)
{
    readonly Dictionary<string, T> byName = entries.ToDictionary(e => e.Name, e => e.Value,
        StringComparer.OrdinalIgnoreCase);

    /// <summary>The names, aliases included, in table order.</summary>
    public IReadOnlyList<string> Names { get; } = [.. entries.Select(e => e.Name)];

    /// <summary>What a failed lookup says was expected (by default every name).</summary>
    public string Expected { get; } = expected ?? string.Join(", ", entries.Select(e => e.Name));

    public bool TryParse(string? name, out T value)
    {
        value = default!;
        return name is not null && byName.TryGetValue(name.Trim(), out value!);
    }

    /// <summary>The value for <paramref name="name"/>, or an ArgumentException naming the concern and the
    /// choices.</summary>
    public T Parse(string? name) =>
        TryParse(name, out var value) ? value : throw new ArgumentException($"{what} '{name}': expected {Expected}");
}
