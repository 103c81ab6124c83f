using System.Diagnostics;
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

    /// <summary>Runs another program (dotnet msbuild, sbatch, squeue ...): its exit code, stdout then stderr.</summary>
    public static (int Rc, string Output) Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }
}
