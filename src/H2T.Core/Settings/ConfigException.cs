namespace H2T.Settings;

/// <summary>An invalid setting: the message names the key and what was expected.</summary>
public class ConfigException(string message) : Exception(message);
