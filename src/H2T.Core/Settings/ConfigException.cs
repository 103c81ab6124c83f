namespace H2T.Settings;

/// <summary>An invalid setting: the message names the key and what was expected. <see cref="Key"/> is the config key
/// the check is about, so the binder can say which file line, override or flag set it.</summary>
public class ConfigException(string message, string? key = null) : Exception(message)
{
    public string? Key { get; } = key;
}
