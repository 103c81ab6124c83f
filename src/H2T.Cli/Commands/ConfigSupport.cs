using H2T.Configuration;
using H2T.Settings;
using Spectre.Console;

namespace H2T.Cli.Commands;

/// <summary>
/// <c>--config FILE [key=value ...]</c> for stage1/stage2. Precedence, lowest first: the settings' defaults, the file,
/// the <c>key=value</c> overrides, then flags typed on the command line (each flag stands for its config key, see
/// <see cref="ReferenceConfig.FlagKeys"/>), so <c>h2t stage2 --config x.yaml --rho 0.5</c> runs rho = 0.5.
/// </summary>
public static class ConfigSupport
{
    /// <summary>Flags that take no value.</summary>
    static readonly HashSet<string> Switches = ["--nesterov", "--reinit", "--resume", "--tensorboard", "--full", "-h", "--help"];

    /// <summary>Flags about the run, not its settings: they have no config key.</summary>
    static readonly HashSet<string> RunOptions = ["--out", "--resume", "--tensorboard", "--config", "--from", "--device", "--threads", "-h", "--help"];

    public static ExperimentConfig Load(StageMode mode, string file, IReadOnlyList<string> overrides, IReadOnlyList<string> arguments)
    {
        try
        {
            var entries = new List<ConfigEntry>(ConfigReader.ReadFile(file));
            entries.AddRange(overrides.Select(ConfigReader.ReadOverride));
            entries.AddRange(FlagEntries(arguments));
            return ReferenceConfig.Bind(mode, entries);
        }
        catch (ConfigException e) { throw new UsageException(e.Message); }
    }

    /// <summary>Flags typed on the command line, as config entries (named after the flag in errors).</summary>
    public static IEnumerable<ConfigEntry> FlagEntries(IReadOnlyList<string> arguments)
    {
        for (int i = 0; i < arguments.Count; i++)
        {
            var arg = arguments[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal)) continue;
            string flag = arg, value;
            var eq = arg.IndexOf('=');
            if (eq > 0) { flag = arg[..eq]; value = arg[(eq + 1)..]; }
            else if (Switches.Contains(flag)) value = "true";
            else if (i + 1 < arguments.Count) value = arguments[++i];
            else continue;
            if (ReferenceConfig.FlagKeys.TryGetValue(flag, out var key))
                yield return new ConfigEntry(key, value, null, $"flag {flag}");
            else if (!RunOptions.Contains(flag))
                // Never drop a typed flag silently: every setting flag must have its config key.
                throw new ConfigException($"flag {flag}: has no config key, so it cannot be combined with --config; set it in the file");
        }
    }

    public static void PrintIgnored(IAnsiConsole console, ExperimentConfig config, string file)
    {
        if (config.Ignored.Count > 0)
            console.MarkupLineInterpolated($"[grey]{file}: accepted without effect here: {string.Join("; ", config.Ignored)}[/]");
    }

    /// <summary>Overrides given without --config would be silently dropped: refuse them.</summary>
    public static void RequireConfigFor(string[] overrides, string? config)
    {
        if (overrides.Length > 0 && config is null)
            throw new UsageException($"'{overrides[0]}': key=value overrides need --config FILE (use the flags otherwise)");
    }
}
