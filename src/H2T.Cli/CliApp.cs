using System.Reflection;
using System.Runtime.InteropServices;
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
        typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split(
            '+')[0] ?? "0.0.0";

    /// <summary>Exit code of a run stopped by SIGTERM or Ctrl-C after its last checkpoint: rerun it with --resume
    /// (a Slurm task requeues itself on it).</summary>
    public const int Interrupted = H2T.Grid.GridRun.Interrupted;

    public static int Run(string[] args, IAnsiConsole? console = null)
    {
        using var stop = new CancellationTokenSource();
        // SIGTERM (Slurm's preemption and time limit, Kubernetes) and the first Ctrl-C cancel the command: training
        // stops between batches, keeps its last checkpoint, releases the run folder and exits 75. A second Ctrl-C
        // ends the process at once, as usual.
        void Handle(PosixSignalContext context)
        {
            if (stop.IsCancellationRequested && context.Signal == PosixSignal.SIGINT) return;
            context.Cancel = true;
            try { stop.Cancel(); }
            catch (ObjectDisposedException) { }
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
        return Run(args, console, stop.Token);
    }

    /// <summary>Runs a command that stops when <paramref name="stop"/> is cancelled: a grid's cells run nested in the
    /// grid's own run this way, sharing its signal handling.</summary>
    public static int Run(string[] args, IAnsiConsole? console, CancellationToken stop)
    {
        // Logs (nohup, CI) should not wrap at the 80-column default of a non-terminal.
        if (console is null && Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;
        var app = new CommandApp();
        app.Configure(config =>
        {
            config.SetApplicationName("h2t");
            config.SetApplicationVersion(Version);
            config.UseStrictParsing();
            if (console is not null) config.ConfigureConsole(console);
            config.SetExceptionHandler((ex, _) => Report(console ?? AnsiConsole.Console, ex, stop));
            config.AddCommand<InfoCommand>("info")
                .WithDescription(
                    "Print TorchSharp / libtorch versions, device, threads and the native fix status. Manual: " +
                    "docs/commands.md#h2t-info, docs/native.md");
            config.AddCommand<DataCommand>("data")
                .WithDescription(
                    "Load a dataset as training would: per-class train/test counts, head/medium/tail groups, " +
                    "totals. Manual: docs/commands.md#h2t-data, docs/datasets.md");
            config.AddCommand<FitCommand>("fit")
                .WithDescription(
                    "Your own images, one command: check, split, plan within --time-limit, train, choose on " +
                    "validation, export ONNX, model card. Manual: docs/commands.md#h2t-fit, docs/own-data.md");
            config.AddCommand<DemoCommand>("demo")
                .WithDescription(
                    "Main job: Fashion-MNIST-LT stage I, stage II with rho=0 and with H2T, side-by-side table. " +
                    "Manual: docs/commands.md#h2t-demo, README.md");
            config.AddCommand<StageOneCommand>("stage1")
                .WithDescription(
                    "Stage I: train backbone + classifier on a long-tailed set. Manual: " +
                    "docs/commands.md#h2t-stage1, docs/own-data.md");
            config.AddCommand<StageTwoCommand>("stage2")
                .WithDescription(
                    "Stage II: frozen backbone, classifier re-training with H2T feature fusion. Manual: " +
                    "docs/commands.md#h2t-stage2, docs/methods.md");
            config.AddCommand<SweepCommand>("sweep")
                .WithDescription(
                    "Stage II for many rho values in one backbone pass; picks rho on a validation split, writes " +
                    "a table and plot. Manual: docs/commands.md#h2t-sweep, docs/sweep.md");
            config.AddCommand<TauNormCommand>("tau-norm")
                .WithDescription(
                    "Decouple's tau-normalised classifier: a grid of tau in one backbone pass, chosen on " +
                    "validation. Manual: docs/commands.md#h2t-tau-norm, docs/methods.md");
            config.AddCommand<ReportCommand>("report")
                .WithDescription(
                    "Compare run folders side by side (Head / Medium / Tail / All / ECE); --out writes " +
                    "Markdown. Manual: docs/commands.md#h2t-report, docs/serving.md");
            config.AddCommand<ImportCommand>("import")
                .WithDescription(
                    "PyTorch -> H2T.NET: turn the reference's stage-I checkpoint into one stage2/sweep/eval " +
                    "read. Manual: docs/commands.md#h2t-import, docs/configs.md");
            config.AddCommand<ExportCommand>("export")
                .WithDescription(
                    "H2T.NET -> ONNX (--format onnx: a model for ONNX Runtime) or PyTorch (a torch.load-able " +
                    "dict of state dicts). Manual: docs/commands.md#h2t-export, docs/inference.md");
            config.AddCommand<PredictCommand>("predict")
                .WithDescription(
                    "Classify images (files, folders, list files) with a checkpoint or an ONNX model: top-k " +
                    "table, JSONL or CSV. Manual: docs/commands.md#h2t-predict, docs/inference.md");
            config.AddCommand<ServeCommand>("serve")
                .WithDescription(
                    "Serve a checkpoint or ONNX model over HTTP: POST /v1/predict (dynamic batching), " +
                    "/v1/model, /healthz, /readyz, /metrics. Manual: docs/commands.md#h2t-serve, " +
                    "docs/serving.md");
            config.AddCommand<EvalCommand>("eval")
                .WithDescription(
                    "Evaluate a checkpoint: top-1/top-5, per-class, head/medium/tail, ECE. Manual: " +
                    "docs/commands.md#h2t-eval, docs/inference.md");
            config.AddCommand<GridCommand>("grid")
                .WithDescription(
                    "A grid of runs from a plan (methods x seeds x imbalance, stage II from each stage I): " +
                    "--local, --slurm (--dry-run: print only), --status, --collect. Manual: " +
                    "docs/commands.md#h2t-grid, docs/grid.md");
        });
        return app.Run(args, stop);
    }

    /// <summary>A command's failure in one line, and its exit code: <see cref="Interrupted"/> when
    /// <paramref name="stop"/> stopped it, <see cref="UsageError"/> for bad input, else 1. A grid's cells fail the
    /// same way.</summary>
    internal static int Report(IAnsiConsole c, Exception ex, CancellationToken stop)
    {
        if (Unwrap(ex) is OperationCanceledException && stop.IsCancellationRequested)
        {
            c.MarkupLine("[yellow]interrupted:[/] stopped between batches; the run folder keeps its last finished "
                + "epoch's checkpoint and is released. Run the same command with --resume to continue.");
            return Interrupted;
        }
        c.MarkupLineInterpolated($"[red]error:[/] {Flatten(ex)}");
        return ex is CommandAppException or UsageException ? UsageError : 1;
    }

    static Exception Unwrap(Exception ex) => ex is TargetInvocationException { InnerException: { } inner } ?
        Unwrap(inner) : ex;

    static string Flatten(Exception ex) => Unwrap(ex).Message;
}

/// <summary>Bad user input (an option, a file, a config key): reported in one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
