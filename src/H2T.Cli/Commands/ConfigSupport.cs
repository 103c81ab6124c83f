using System.Collections;
using System.Reflection;
using H2T.Configuration;
using H2T.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>Marks an option about the run, not its settings (--out, --resume, --config, --device ...): it has no
/// config key and the command reads it itself. Every other option of a command that binds a config is a config key's
/// flag.</summary>
[AttributeUsage(AttributeTargets.Property, Inherited = true)]
public sealed class RunOptionAttribute : Attribute;

/// <summary>
/// The command line's side of the one binder. A run's settings come as config entries from, lowest precedence
/// first: the records' defaults, the <c>--config</c> file, the <c>key=value</c> overrides, then the flags typed
/// (each flag is the config key <see cref="ReferenceConfig.FlagKey"/> names), so
/// <c>h2t stage2 --config x.yaml --rho 0.5</c> runs rho = 0.5. <see cref="ReferenceConfig.Bind"/> binds them all and
/// checks the result once. The flags' values are the ones Spectre.Console.Cli parsed into the settings object: the
/// command line is read once.
/// </summary>
public static class ConfigSupport
{
    /// <summary>Binds a command's settings: the config file (when given), the overrides, the flags typed.</summary>
    public static ExperimentConfig Bind(StageMode mode, CommandSettings settings, string? file = null,
        IReadOnlyList<string>? overrides = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        try
        {
            var entries = new List<ConfigEntry>(ReferenceConfig.EnvironmentEntries());
            if (file is not null) entries.AddRange(ConfigReader.ReadFile(file));
            entries.AddRange((overrides ?? []).Select(ConfigReader.ReadOverride));
            entries.AddRange(FlagEntries(mode, settings));
            return ReferenceConfig.Bind(mode, entries);
        }
        catch (ConfigException e) { throw new UsageException(e.Message); }
    }

    /// <summary>
    /// The setting flags Spectre parsed into <paramref name="settings"/>, as config entries (named after the flag in
    /// errors, <c>--rho 0.5</c>): every <see cref="CommandOptionAttribute"/> property with a value, except run options
    /// (<see cref="RunOptionAttribute"/>). A switch is "true" when given; a repeated option (--sweep) is one entry
    /// per value.
    /// </summary>
    public static IEnumerable<ConfigEntry> FlagEntries(StageMode mode, CommandSettings settings) =>
        FlagEntries(settings, flag => ReferenceConfig.FlagKey(mode, flag));

    /// <summary><see cref="FlagEntries(StageMode, CommandSettings)"/> for a command with its own name table:
    /// <paramref name="flagKey"/> gives the key each setting flag stands for.</summary>
    public static IEnumerable<ConfigEntry> FlagEntries(CommandSettings settings, Func<string, string?> flagKey)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(flagKey);
        foreach (var p in settings.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<CommandOptionAttribute>() is not { } option
                || p.IsDefined(typeof(RunOptionAttribute), true)) continue;
            var flag = "--" + option.LongNames[0];
            // A setting switch is bool? (null: not given; false: --flag=false); a plain bool's false is "not given".
            var given = p.GetValue(settings);
            var values = given is false && p.PropertyType == typeof(bool?) ? ["false"] : Values(given).ToList();
            if (values.Count == 0) continue;
            var key = flagKey(flag)
                // Never drop a typed flag silently: every setting flag has its config key.
                ?? throw new ConfigException($"flag {flag}: has no config key for this command");
            foreach (var value in values)
            {
                if (key != ReferenceConfig.SweptKeys)
                {
                    yield return new ConfigEntry(key, value, null, $"{flag} {value}");
                    continue;
                }
                // The value names the key: --sweep KEY=VALUES is the entry sweep.KEY with those values.
                int at = value.IndexOf('=', StringComparison.Ordinal);
                if (at <= 0)
                    throw new ConfigException(
                        $"{flag} {value}: expected KEY=VALUES, e.g. {flag} feature_mixup.alpha=0.2,0.4");
                yield return new ConfigEntry($"sweep.{value[..at].Trim()}", value[(at + 1)..], null, $"{flag} {value}");
            }
        }
    }

    /// <summary>A parsed option's values as the binder reads them: none when not given (null, a switch left
    /// off).</summary>
    static IEnumerable<string> Values(object? value) => value switch
    {
        null or false => [],
        true => ["true"],
        string s => [s],
        IEnumerable many => many.Cast<object?>().SelectMany(Values),
        IFormattable f => [f.ToString(null, System.Globalization.CultureInfo.InvariantCulture)],
        _ => [value.ToString() ?? ""],
    };

    public static void PrintIgnored(IAnsiConsole console, ExperimentConfig config, string? file)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(config);
        if (file is not null && config.Ignored.Count > 0)
            console.MarkupLineInterpolated(
                $"[grey]{file}: accepted without effect here: {string.Join("; ", config.Ignored)}[/]");
    }
}
