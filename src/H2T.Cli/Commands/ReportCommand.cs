using System.ComponentModel;
using H2T.Runs;
using H2T.Reporting;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class ReportSettings : GlobalSettings
{
    [CommandArgument(0, "<RUN_DIR>")] [Description("run folders (each with metrics.json)")]
    public string[] Runs { get; init; } = [];
    [CommandOption("--out <FILE>")] [Description("write the comparison as Markdown")]
    public string? Out { get; init; }
    [CommandOption("--html <FILE>")] [Description(
        "write a self-contained page: per run the group table, per-class accuracy against count, the confusion heat " +
        "map and the tail's misclassified test images; later runs set against the first (the images each fixed and " +
        "broke)")]
    public string? Html { get; init; }
    [CommandOption("--title <TEXT>")]
    public string? Title { get; init; }
    [CommandOption("--plot <PNG>")] [Description(
        "also plot the runs: group bars (PNG) and per-class accuracy against count (*-per-class.png); default beside " +
        "--out")]
    public string? Plot { get; init; }
    [CommandOption("--embedding <HEAD,TAIL>")]
    [Description(
        "the paper's Figure 4: test features of a head and a tail class in 2-D with each run's decision boundary, " +
        "one panel per run (embedding.png beside --out)")]
    public string? Embedding { get; init; }
    [CommandOption("--data <PATH>")] [Description("dataset files for --embedding, if not where the runs found them")]
    public string? DataPath { get; init; }
}

/// <summary>Compares finished (or running) runs side by side: table, Markdown, plots, the 2-D embedding
/// figure.</summary>
public sealed class ReportCommand(IAnsiConsole console) : Command<ReportSettings>
{
    public override int Execute(CommandContext context, ReportSettings settings, CancellationToken cancellationToken)
    {
        var rows = CommandSupport.Train(() => settings.Runs.Select(ComparisonReport.Load).ToList());
        ResultsTable.Write(console, rows.Select(r => (r.Name, r.Metrics)));
        if (settings.Html is { } html)
        {
            CommandSupport.Train(() => { H2T.Reporting.RunPage.Write(html, settings.Runs,
                settings.Title ?? "H2T.NET runs", settings.DataPath); return 0; });
            console.MarkupLineInterpolated($"page: {html}");
        }
        var embedding = settings.Embedding is { } spec ? ParseClasses(spec) : ((int, int)?)null;
        var baseDir = settings.Out is not null ? Path.GetDirectoryName(Path.GetFullPath(settings.Out))! :
            Directory.GetCurrentDirectory();
        var png = settings.Plot ?? (settings.Out is not null ? Path.ChangeExtension(settings.Out, ".png") : null);
        var images = new List<string>();
        if (png is not null)
        {
            var written = CommandSupport.Train(() => ComparisonReport.Plots(rows, png, settings.Title));
            images.AddRange(written);
            console.MarkupLineInterpolated($"plots: {string.Join(", ", written)}");
        }
        if (embedding is { } classes)
        {
            var path = Path.Combine(baseDir, "embedding.png");
            var runs = rows.Select(r => (r.Name, Path.Combine(r.Folder, "last.ckpt"))).ToList();
            var device = CommandSupport.Start(settings);
            CommandSupport.Train(() => { EmbeddingPlot.Write(H2T.Inference.FeatureProjection.Compute(runs,
                classes.Item1, classes.Item2, device, settings.DataPath), path); return 0; });
            images.Add(path);
            console.MarkupLineInterpolated($"embedding: {path}");
        }
        if (settings.Out is not null)
        {
            AtomicFile.WriteText(settings.Out, ComparisonReport.Markdown(rows, settings.Title, images, baseDir));
            console.MarkupLineInterpolated($"wrote {settings.Out}");
        }
        return 0;
    }

    static (int, int) ParseClasses(string spec)
    {
        var parts = spec.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length == 2 && int.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out var a)
            && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out var b) && a != b)
            return (a, b);
        throw new UsageException($"--embedding {spec}: expected two different class indices HEAD,TAIL (e.g. 0,9)");
    }
}
