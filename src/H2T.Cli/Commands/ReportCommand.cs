using System.ComponentModel;
using H2T.Reporting;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class ReportSettings : CommandSettings
{
    [CommandArgument(0, "<RUN_DIR>")] [Description("run folders (each with metrics.json)")]
    public string[] Runs { get; init; } = [];
    [CommandOption("--out <FILE>")] [Description("write the comparison as Markdown")]
    public string? Out { get; init; }
    [CommandOption("--title <TEXT>")]
    public string? Title { get; init; }
}

/// <summary>Compares finished (or running) runs side by side.</summary>
public sealed class ReportCommand(IAnsiConsole console) : Command<ReportSettings>
{
    public override int Execute(CommandContext context, ReportSettings settings, CancellationToken cancellationToken)
    {
        var rows = CommandSupport.Train(() => settings.Runs.Select(ComparisonReport.Load).ToList());
        ResultsTable.Write(console, rows.Select(r => (r.Name, r.Metrics)));
        if (settings.Out is not null)
        {
            AtomicFile.WriteText(settings.Out, ComparisonReport.Markdown(rows, settings.Title));
            console.MarkupLineInterpolated($"wrote {settings.Out}");
        }
        return 0;
    }
}
