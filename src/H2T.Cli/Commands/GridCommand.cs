using System.ComponentModel;
using H2T.Grid;
using H2T.Runs;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class GridSettings : CommandSettings
{
    [CommandArgument(0,
        "<PLAN>")] [Description(
        "the grid's plan (YAML: name, out, seeds, imbalance, stage1.<method>, stage2.<method>, slurm; see " +
            "docs/grid.md)")]
    public string Plan { get; init; } = "";
    [CommandOption("--local")] [Description(
        "run every cell here, one after another; finished cells are skipped, partial ones resumed")]
    public bool Local { get; init; }
    [CommandOption("--slurm")] [Description(
        "write sbatch array jobs (stage I, then each stage II after its stage I: --dependency=aftercorr) and submit " +
        "them")]
    public bool Slurm { get; init; }
    [CommandOption("--dry-run")] [Description("with --slurm: print the scripts and sbatch commands, submit nothing")]
    public bool DryRun { get; init; }
    [CommandOption("--status")] [Description(
        "each cell's state from its run folder (done, running, partial: epoch k/N, waiting, pending) and, once " +
        "submitted, in Slurm's queue")]
    public bool Status { get; init; }
    [CommandOption("--collect")] [Description(
        "write the grid's table (mean and spread over seeds) and plot: OUT/grid/results.md, .json, .png")]
    public bool Collect { get; init; }
    [CommandOption("--cell <ID>")] [Description(
        "run one cell (stage1:3, <stage2 method>:0): what a Slurm array task runs")]
    public string? Cell { get; init; }
    [CommandOption("--only <CELLS>")] [Description(
        "with --local: only these cells: ids (stage1:0,crt:0) or seed=N, imbalance=F, method=NAME, all of which must " +
        "hold")]
    public string? Only { get; init; }
    [CommandOption("--threads <N>")] [Description("libtorch threads of each cell, unless the plan sets threads")]
    public int? Threads { get; init; }

    public override ValidationResult Validate()
    {
        int modes = (Local ? 1 : 0) + (Slurm ? 1 : 0) + (Status ? 1 : 0) + (Collect ? 1 : 0) + (Cell is null ? 0 : 1);
        if (modes != 1) return ValidationResult.Error(
            "h2t grid PLAN: choose one of --local, --slurm, --status, --collect or --cell ID");
        if (DryRun && !Slurm) return ValidationResult.Error("--dry-run goes with --slurm");
        if (Only is not null && !Local) return ValidationResult.Error("--only goes with --local");
        if (Threads is < 1) return ValidationResult.Error($"--threads {Threads}: expected a whole number >= 1");
        return base.Validate();
    }
}

/// <summary>A grid of runs: each mode is one library entry point (GridRun, SlurmGrid, GridSummary).</summary>
public sealed class GridCommand(IAnsiConsole console) : Command<GridSettings>
{
    public override int Execute(CommandContext context, GridSettings settings, CancellationToken cancellationToken)
    {
        var plan = CommandSupport.Train(() => GridRun.Load(settings.Plan));
        void Log(string line) => console.WriteLine(line);
        // Each cell runs through the library's entry point; it prints here as stage1 and sweep print.
        var host = new ConsoleCellHost(console, cancellationToken);
        if (settings.Local)
        {
            var outcome = CommandSupport.Train(() =>
                GridRun.Local(plan, host, Log, settings.Only, settings.Threads, cancellationToken));
            if (outcome.Interrupted) return CliApp.Interrupted;
            var md = CommandSupport.Train(() => GridSummary.Write(plan));
            console.WriteLine($"results: {md}");
            return outcome.Failed.Count == 0 ? 0 : 1;
        }
        if (settings.Cell is { } id)
            return CommandSupport.Train(() => GridRun.Cell(plan, id, settings.Threads, host, Log, cancellationToken));
        if (settings.Slurm)
        {
            CommandSupport.Train(() => SlurmGrid.Submit(plan, SelfCommand(), settings.DryRun, Log));
            return 0;
        }
        if (settings.Status)
        {
            var queue = SlurmGrid.Queue(plan);
            var table = new Table().AddColumns("cell", "what", "state", "detail", "folder");
            if (queue.Count > 0) table.AddColumn("slurm");
            foreach (var s in GridRun.Status(plan))
            {
                string[] row = [Markup.Escape(s.Cell.Id), Markup.Escape(s.Cell.Label),
                    s.State.ToString().ToLowerInvariant(), Markup.Escape(s.Detail), Markup.Escape(s.Cell.Folder)];
                table.AddRow(queue.Count == 0 ? row : [.. row, Markup.Escape(queue.GetValueOrDefault(s.Cell.Id, "-"))]);
            }
            console.Write(table);
            return 0;
        }
        console.WriteLine($"results: {CommandSupport.Train(() => GridSummary.Write(plan))}");
        return 0;
    }

    /// <summary>A grid's cells on this console: started, shown and reported as the training commands do.</summary>
    sealed class ConsoleCellHost(IAnsiConsole console, CancellationToken stop) : ICellHost
    {
        public TorchSharp.torch.Device Start(int? threads, string device) => CommandSupport.Start(threads, device);

        public ExperimentOutcome Train(ExperimentRun run, Func<ITrainingObserver, ExperimentOutcome> train)
        {
            // What the cell's command printed first: the config file's keys that have no effect here.
            ConfigSupport.PrintIgnored(console, run.Experiment, run.ConfigFile);
            return TrainingRuns.Train(console, run, train);
        }

        public int Failed(Exception failure) =>
            CliApp.Report(console, CommandSupport.IsUsage(failure) ? new UsageException(failure.Message) : failure,
                stop);
    }

    /// <summary>How a node runs this h2t: the same executable (or dotnet and the same h2t.dll).</summary>
    static string[] SelfCommand()
    {
        var exe = Environment.ProcessPath ?? "h2t";
        var dll = typeof(CliApp).Assembly.Location;
        return Path.GetFileNameWithoutExtension(exe) == "dotnet" && dll.Length > 0 ? [exe, dll] : [exe];
    }
}
