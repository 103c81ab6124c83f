using System.ComponentModel;
using H2T.Reporting;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class SweepSettings : StageTwoOptions
{
    [CommandOption("--rho <SPEC>")] [DefaultValue("0:1:0.1")] [Description("values: start:stop:step (stop included) or a comma list")]
    public string Rho { get; init; } = "0:1:0.1";
    [CommandOption("--val-per-class <N>")] [DefaultValue(100)]
    [Description("validation images per class for choosing rho (0: none; a stage-I run made with a split keeps its own)")]
    public int ValidationPerClass { get; init; } = 100;
    [CommandOption("--out <DIR>")] [Description("sweep folder (default: sweep-... beside the stage-I checkpoint)")]
    public string? Out { get; init; }

    public override ValidationResult Validate()
    {
        if (string.IsNullOrWhiteSpace(From)) return ValidationResult.Error("--from: the stage-I checkpoint is required");
        return base.Validate();
    }
}

/// <summary>Stage II for many rho values in one backbone pass; selects rho on validation.</summary>
public sealed class SweepCommand(IAnsiConsole console) : Command<SweepSettings>
{
    public override int Execute(CommandContext context, SweepSettings settings, CancellationToken cancellationToken)
    {
        var config = CommandSupport.Guard(() => new SweepConfig(settings.ToConfig(0), SweepConfig.ParseRhos(settings.Rho), settings.ValidationPerClass),
            c => c.Validate());
        if (!File.Exists(settings.From)) throw new UsageException($"--from {settings.From}: checkpoint not found");
        var device = CommandSupport.Start(settings);
        var outDir = Path.GetFullPath(settings.Out ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(settings.From))!,
            $"sweep-{settings.Loss}-e{settings.Epochs}-s{settings.Seed}"));
        console.MarkupLineInterpolated($"[bold]stage II sweep[/] from {settings.From}: rho {string.Join(", ", config.Rhos)} in one pass, {settings.Epochs} epochs -> {outDir}");
        var result = CommandSupport.Train(() => ConsoleObserver.Run(console, o =>
            StageTwoSweep.Run(settings.From, config, outDir, device, o, settings.DataPath, settings.Resume, cancellationToken)));
        Write(console, result, outDir);
        return 0;
    }

    /// <summary>Table on the console, sweep.md and sweep.png in the folder.</summary>
    internal static void Write(IAnsiConsole console, SweepResult result, string outDir)
    {
        var png = Path.Combine(outDir, "sweep.png");
        SweepReport.Plot(result, png);
        AtomicFile.WriteText(Path.Combine(outDir, "sweep.md"), SweepReport.Markdown(result, "sweep.png"));
        ResultsTable.WriteSweep(console, result);
        foreach (var row in result.Rows) CommandSupport.WriteRunReport(console, row.RunFolder);
        console.MarkupLineInterpolated($"sweep: {Path.Combine(outDir, "sweep.md")} (plot {png}); {result.WallSeconds:F0} s for {result.Rows.Count} values");
    }
}
