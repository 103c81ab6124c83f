namespace H2T.Settings;

/// <summary>On/off spellings, for a YAML boolean and an on/off flag (--shift-bn) alike.</summary>
public static class Switches
{
    public static NameTable<bool> Table { get; } = new("switch",
    [
        ("true", true), ("yes", true), ("on", true), ("1", true),
        ("false", false), ("no", false), ("off", false), ("0", false),
    ], "on or off (true / false)");
}
