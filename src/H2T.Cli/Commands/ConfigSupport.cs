using H2T.Configuration;
using H2T.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>
/// The command line's side of the one binder. A run's settings come as config entries from, lowest precedence
/// first: the records' defaults, the <c>--config</c> file, the <c>key=value</c> overrides, then the flags typed
/// (each flag is the config key <see cref="ReferenceConfig.FlagKey"/> names), so <c>h2t stage2 --config x.yaml --rho 0.5</c>
/// runs rho = 0.5. <see cref="ReferenceConfig.Bind"/> binds them all and checks the result once.
/// </summary>
public static class ConfigSupport
{
    /// <summary>Flags that take no value.</summary>
    static readonly HashSet<string> Switches = ["--nesterov", "--reinit", "--resume", "--tensorboard", "--full", "--allow-missing", "-h", "--help"];

    /// <summary>Flags about the run, not its settings: they have no config key.</summary>
    static readonly HashSet<string> RunOptions = ["--out", "--resume", "--tensorboard", "--config", "--from", "--device", "--threads", "--allow-missing", "-h", "--help"];

    /// <summary>Binds a command's settings: the config file (when given), the overrides, the flags typed.</summary>
    public static ExperimentConfig Bind(StageMode mode, CommandContext context, string? file = null, IReadOnlyList<string>? overrides = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            var entries = new List<ConfigEntry>();
            // The old spelling of memory_layout (a process-wide switch until 2026-12), kept as an alias of the key at the
            // lowest precedence: the file, overrides and flags still win.
            if (Environment.GetEnvironmentVariable("H2T_CHANNELS_LAST") == "0")
                entries.Add(new ConfigEntry("memory_layout", "nchw", null, "environment H2T_CHANNELS_LAST=0 (an alias of memory_layout: nchw)"));
            if (file is not null) entries.AddRange(ConfigReader.ReadFile(file));
            entries.AddRange((overrides ?? []).Select(ConfigReader.ReadOverride));
            entries.AddRange(FlagEntries(mode, context.Arguments));
            return ReferenceConfig.Bind(mode, entries);
        }
        catch (ConfigException e) { throw new UsageException(e.Message); }
    }

    /// <summary>Flags typed on the command line, as config entries (named after the flag in errors).</summary>
    public static IEnumerable<ConfigEntry> FlagEntries(StageMode mode, IReadOnlyList<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
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
            var key = ReferenceConfig.FlagKey(mode, flag);
            if (key == ReferenceConfig.SweptKeys)
            {
                // The value names the key: --sweep KEY=VALUES is the entry sweep.KEY with those values.
                int at = value.IndexOf('=');
                if (at <= 0) throw new ConfigException($"{flag} {value}: expected KEY=VALUES, e.g. {flag} feature_mixup.alpha=0.2,0.4");
                yield return new ConfigEntry($"sweep.{value[..at].Trim()}", value[(at + 1)..], null, $"{flag} {value}");
            }
            else if (key is not null)
                yield return new ConfigEntry(key, value, null, $"{flag} {value}");
            else if (!RunOptions.Contains(flag))
                // Never drop a typed flag silently: every setting flag has its config key.
                throw new ConfigException($"flag {flag}: has no config key for this command");
        }
    }

    public static void PrintIgnored(IAnsiConsole console, ExperimentConfig config, string? file)
    {
        if (file is not null && config.Ignored.Count > 0)
            console.MarkupLineInterpolated($"[grey]{file}: accepted without effect here: {string.Join("; ", config.Ignored)}[/]");
    }
}
