using H2T.Models;
using H2T.Runtime;

// The runtime looks for a type named StartupHook in no namespace (DOTNET_STARTUP_HOOKS); that name is the contract.
#pragma warning disable CA1050
/// <summary>
/// Runs only in the pointwise probe's child (<see cref="Pointwise.ProbeCommand"/>): before the application's Main,
/// the probe, its pass line, and exit 0. An affected machine kills the child here instead.
/// </summary>
internal static class StartupHook
#pragma warning restore CA1050
{
    public static void Initialize()
    {
        if (Environment.GetEnvironmentVariable(Pointwise.ProbeChildVariable) != "run") return;
        TorchRuntime.Initialize();
        Console.Out.WriteLine(Pointwise.ProbeStarted);
        Console.Out.Flush();
        Pointwise.ProbeInProcess();
        Console.Out.WriteLine(Pointwise.ProbePassed);
        Console.Out.Flush();
        Environment.Exit(0);
    }
}
