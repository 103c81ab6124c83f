using System.Globalization;
using H2T.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary><c>h2t data</c>: loads a dataset as training would and prints per-class counts, groups and
/// totals.</summary>
public sealed class DataCommand(IAnsiConsole console) : Command<DataOptions>
{
    public override int Execute(CommandContext context, DataOptions settings, CancellationToken cancellationToken)
    {
        var config = ConfigSupport.Bind(Configuration.StageMode.StageOne, settings).Data;
        DatasetSplits splits;
        try { splits = DatasetCatalog.Load(config); }
        catch (Exception e) when (e is DataFormatException or IOException or ArgumentException or
            UnauthorizedAccessException)
        {
            throw new UsageException(e.Message);
        }

        var test = splits.TestClassCounts;
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("class").AddColumn("name").AddColumn("group")
            .AddColumn(new TableColumn("train").RightAligned()).AddColumn(new TableColumn("test").RightAligned());
        for (int c = 0; c < splits.NumClasses; c++)
            table.AddRow(c.ToString(CultureInfo.InvariantCulture), Markup.Escape(splits.ClassNames[c]),
                splits.Groups.GroupOf(c),
                splits.TrainClassCounts[c].ToString(CultureInfo.InvariantCulture),
                    test[c].ToString(CultureInfo.InvariantCulture));
        table.AddEmptyRow();
        table.AddRow("total", "", "", splits.Train.Count.ToString(CultureInfo.InvariantCulture),
            splits.Test.Count.ToString(CultureInfo.InvariantCulture));

        int max = splits.TrainClassCounts.Max(), min = splits.TrainClassCounts.Min();
        console.MarkupLineParts(
            $"[bold]{splits.Name}[/]: {splits.NumClasses} classes, images {splits.Train.Shape.ToString()}, long-tail ",
                $"{config.ImbType.ToString().ToLowerInvariant()} imb-factor ",
                $"{config.ImbFactor.ToString(CultureInfo.InvariantCulture)} (seed {config.LongTailSeed})");
        console.Write(table);
        foreach (var (group, classes) in new[] { ("head", splits.Groups.Head), ("medium", splits.Groups.Medium),
            ("tail", splits.Groups.Tail) })
            console.MarkupLineParts(
                $"{group}: {classes.Length} classes, {classes.Sum(c => splits.TrainClassCounts[c])} train / ",
                $"{classes.Sum(c => test[c])} test images");
        console.MarkupLineParts(
            $"train {splits.Train.Count} images (max {max}, min {min}, ratio {(double)max / min:0.##}); test ",
            $"{splits.Test.Count} images");
        return 0;
    }
}
