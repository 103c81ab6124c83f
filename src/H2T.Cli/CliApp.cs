using System.Reflection;
using H2T.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli;

/// <summary>Builds the <c>h2t</c> command tree. Tests drive <see cref="Run"/> in-process.</summary>
public static class CliApp
{
    /// <summary>Exit code for bad options or input: one clear message, nothing written.</summary>
    public const int UsageError = 2;

    public static string Version =>
        typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static int Run(string[] args, IAnsiConsole? console = null)
    {
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("h2t");
            config.SetApplicationVersion(Version);
            config.UseStrictParsing();
            if (console is not null) config.ConfigureConsole(console);
            config.SetExceptionHandler((ex, _) =>
            {
                var c = console ?? AnsiConsole.Console;
                c.MarkupLineInterpolated($"[red]error:[/] {Flatten(ex)}");
                return ex is CommandAppException or UsageException ? UsageError : 1;
            });
            config.AddCommand<InfoCommand>("info")
                .WithDescription("Print TorchSharp / libtorch versions, device, threads and the native fix status.");
            config.AddCommand<DataCommand>("data")
                .WithDescription("Load a dataset as training would: per-class train/test counts, head/medium/tail groups, totals.");
        });
        return app.Run(args);
    }

    static string Flatten(Exception ex) => ex is TargetInvocationException { InnerException: { } inner } ? Flatten(inner) : ex.Message;
}

/// <summary>Bad user input (an option, a file, a config key): reported in one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
