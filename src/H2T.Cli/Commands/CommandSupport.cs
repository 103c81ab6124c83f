using H2T.Runs;
using H2T.Runtime;
using H2T.Settings;
using H2T.Training;
using TorchSharp;

namespace H2T.Cli.Commands;

/// <summary>What every computing command does first, and how library errors become one-line usage errors.</summary>
internal static class CommandSupport
{
    public static T Guard<T>(Func<T> make, Action<T> validate)
    {
        try
        {
            var value = make();
            validate(value);
            return value;
        }
        catch (ConfigException e) { throw new UsageException(e.Message); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
    }

    public static torch.Device Start(GlobalSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return Start(settings.Threads, settings.Device);
    }

    /// <summary>libtorch's threads, then the device (a grid cell starts its own, as the command would).</summary>
    public static torch.Device Start(int? threads, string device)
    {
        TorchRuntime.Initialize(threads);
        try { return TorchRuntime.ResolveDevice(device); }
        catch (DeviceUnavailableException e) { throw new UsageException(e.Message); }
    }

    /// <summary>Runs training under the console observer, also writing TensorBoard scalars into <c>RUN/tensorboard</c>
    /// when asked.</summary>
    public static T Observed<T>(Spectre.Console.IAnsiConsole console, string runPath, bool tensorboard,
        Func<ITrainingObserver, T> work) =>
        ConsoleObserver.Run(console, o =>
        {
            if (!tensorboard) return work(o);
            using var tb = new H2T.Reporting.TensorBoardObserver(o, Path.Combine(runPath, "tensorboard"));
            o.Message(
                $"TensorBoard events: {tb.EventFile} (tensorboard --logdir {Path.GetDirectoryName(tb.EventFile)})");
            return work(tb);
        });

    /// <summary>What every finished training command prints: the results table, the run report, where the files
    /// are.</summary>
    public static void Finish(Spectre.Console.IAnsiConsole console, RunFolder run, string label, RunMetrics metrics)
    {
        ResultsTable.Write(console, [(label, metrics)]);
        WriteRunReport(console, run.Path);
        console.MarkupLineParts(
            $"checkpoints: {run.LastCheckpoint} (last), {run.BestCheckpoint} (best); metrics: {run.MetricsFile}");
    }

    /// <summary>A finished sweep: sweep.md and sweep.png in its folder, its table, every member's report.</summary>
    public static void WriteSweep(Spectre.Console.IAnsiConsole console, SweepResult result, string outDir)
    {
        var (markdown, png) = H2T.Reporting.SweepReport.Write(result, outDir);
        ResultsTable.WriteSweep(console, result);
        foreach (var row in result.Rows) WriteRunReport(console, row.RunFolder);
        console.MarkupLineParts(
            $"sweep: {markdown} (plot {png}); {result.WallSeconds:F0} s for {result.Rows.Count} values");
    }

    /// <summary>report.md and its plots in the run folder; a failure to plot never fails the finished run.</summary>
    public static void WriteRunReport(Spectre.Console.IAnsiConsole console, string runPath, string? title = null)
    {
        try
        {
            var path = H2T.Reporting.RunReport.Write(runPath, title);
            Spectre.Console.AnsiConsoleExtensions.MarkupLineInterpolated(console,
                $"report: {path} (curves.png, per-class.png, reliability.png)");
        }
        catch (Exception e) when (e is IOException or ConfigException or InvalidOperationException or
            System.Text.Json.JsonException)
        {
            Spectre.Console.AnsiConsoleExtensions.MarkupLineInterpolated(console,
                $"[yellow]report not written:[/] {e.Message}");
        }
    }

    /// <summary>An optional extra (a plot) that must never fail the finished run: its failure is one yellow line, and
    /// null.</summary>
    public static T? Try<T>(Spectre.Console.IAnsiConsole console, string what, Func<T> make) where T : class
    {
        try { return make(); }
        catch (Exception e) when (e is IOException or ConfigException or InvalidOperationException or ArgumentException)
        {
            Spectre.Console.AnsiConsoleExtensions.MarkupLineInterpolated(console, $"[yellow]{what}:[/] {e.Message}");
            return null;
        }
    }

    /// <summary>Bad input found while loading data or checkpoints is the user's to fix: exit code 2.</summary>
    public static T Train<T>(Func<T> work)
    {
        try { return work(); }
        catch (Exception e) when (IsUsage(e)) { throw new UsageException(e.Message); }
    }

    /// <summary>An error in what the user gave (a config, a path, a file's contents), not in H2T.NET.</summary>
    public static bool IsUsage(Exception e) =>
        e is ConfigException or InvalidDataException or H2T.Data.DataFormatException or FileNotFoundException
            or DirectoryNotFoundException or ArgumentException;
}
