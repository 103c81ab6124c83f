using H2T.Cli.Commands;
using H2T.Configuration;
using Spectre.Console.Cli;

namespace H2T.Tests.Cli;

/// <summary>The command line as the training commands read it: Spectre.Console.Cli parses the words into the
/// command's settings (strict parsing, as h2t does), then <see cref="ConfigSupport.FlagEntries"/> turns what it parsed
/// into config entries. No second pass over the words.</summary>
internal static class CliFlags
{
    /// <summary>The settings Spectre bound from <paramref name="args"/> (a stage-II command gets a dummy
    /// --from).</summary>
    public static T Parse<T>(params string[] args) where T : CommandSettings
    {
        var app = new CommandApp<Capture<T>>();
        app.Configure(c =>
        {
            c.UseStrictParsing();
            c.PropagateExceptions();
        });
        Capture<T>.Last = null;
        var stageTwo = typeof(StageTwoOptions).IsAssignableFrom(typeof(T)) && !args.Contains("--from");
        var rc = app.Run(stageTwo ? [.. args, "--from", "x.ckpt"] : args);
        Assert.Equal(0, rc);
        return (T)Capture<T>.Last!;
    }

    /// <summary>The settings type of a training command of <paramref name="mode"/>.</summary>
    public static Type SettingsOf(StageMode mode) => mode switch
    {
        StageMode.StageOne => typeof(StageOneSettings),
        StageMode.StageTwo => typeof(StageTwoSettings),
        _ => typeof(SweepSettings),
    };

    /// <summary>The flag entries of <paramref name="args"/> typed to the training command of
    /// <paramref name="mode"/>.</summary>
    public static IReadOnlyList<ConfigEntry> Entries(StageMode mode, params string[] args) => mode switch
    {
        StageMode.StageOne => Entries<StageOneSettings>(mode, args),
        StageMode.StageTwo => Entries<StageTwoSettings>(mode, args),
        _ => Entries<SweepSettings>(mode, args),
    };

    public static IReadOnlyList<ConfigEntry> Entries<T>(StageMode mode, params string[] args)
        where T : CommandSettings => [.. ConfigSupport.FlagEntries(mode, Parse<T>(args))];

    sealed class Capture<T> : Command<T> where T : CommandSettings
    {
        [ThreadStatic] public static CommandSettings? Last;

        public override int Execute(CommandContext context, T settings, CancellationToken cancellationToken)
        {
            Last = settings;
            return 0;
        }
    }
}
