using H2T.Cli;
using Spectre.Console.Testing;

namespace H2T.Tests.Cli;

/// <summary>Runs the h2t CLI in-process on a wide test console: exit code and everything it printed.</summary>
internal static class CliRunner
{
    public static (int Rc, string Output) Run(params string[] args)
    {
        var console = new TestConsole().Width(250);
        var rc = CliApp.Run(args, console);
        return (rc, console.Output);
    }
}
