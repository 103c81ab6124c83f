using System.ComponentModel;
using System.Globalization;
using H2T.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class DataSettings : CommandSettings
{
    [CommandOption("--dataset <NAME>")]
    [Description("fashion-mnist (default), mnist, cifar10, cifar100, imagefolder, cifar10-jpg, imagenet-lt, places-lt, inat2018")]
    [DefaultValue("fashion-mnist")]
    public string Dataset { get; init; } = "fashion-mnist";

    [CommandOption("--data <PATH>")]
    [Description("where the dataset is (folder or archive; see README). Fashion-MNIST defaults to /usr/share/datasets/fashion-mnist")]
    public string? Data { get; init; }

    [CommandOption("--imb-factor <F>")]
    [Description("imbalance factor n_max / n_min of the long-tailed training set (1 = balanced)")]
    [DefaultValue(100.0)]
    public double ImbFactor { get; init; } = 100;

    [CommandOption("--imb-type <TYPE>")]
    [Description("exp or step")]
    [DefaultValue("exp")]
    public string ImbType { get; init; } = "exp";

    [CommandOption("--lt-seed <N>")]
    [Description("seed of the long-tail subset selection (0 in the reference codebases)")]
    [DefaultValue(0)]
    public int LongTailSeed { get; init; }

    public override ValidationResult Validate()
    {
        if (!DatasetCatalog.Names.Contains(Dataset))
            return ValidationResult.Error($"--dataset {Dataset}: expected one of {string.Join(", ", DatasetCatalog.Names)}");
        if (!(ImbFactor >= 1) || double.IsInfinity(ImbFactor))
            return ValidationResult.Error($"--imb-factor {ImbFactor.ToString(CultureInfo.InvariantCulture)}: expected a number >= 1");
        if (ImbType is not ("exp" or "step")) return ValidationResult.Error($"--imb-type {ImbType}: expected exp or step");
        if (LongTailSeed < 0) return ValidationResult.Error($"--lt-seed {LongTailSeed}: expected a whole number >= 0");
        return base.Validate();
    }

    public DataConfig ToConfig() => new(Dataset, Data, ImbFactor, ImbType == "step" ? ImbalanceType.Step : ImbalanceType.Exp, LongTailSeed);
}

/// <summary><c>h2t data</c>: loads a dataset as training would and prints per-class counts, groups and totals.</summary>
public sealed class DataCommand(IAnsiConsole console) : Command<DataSettings>
{
    public override int Execute(CommandContext context, DataSettings settings, CancellationToken cancellationToken)
    {
        var config = settings.ToConfig();
        DatasetSplits splits;
        try { splits = DatasetCatalog.Load(config); }
        catch (Exception e) when (e is DataFormatException or IOException or ArgumentException or UnauthorizedAccessException)
        {
            throw new UsageException(e.Message);
        }

        var test = splits.TestClassCounts;
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("class").AddColumn("name").AddColumn("group")
            .AddColumn(new TableColumn("train").RightAligned()).AddColumn(new TableColumn("test").RightAligned());
        for (int c = 0; c < splits.NumClasses; c++)
            table.AddRow(c.ToString(CultureInfo.InvariantCulture), Markup.Escape(splits.ClassNames[c]), splits.Groups.GroupOf(c),
                splits.TrainClassCounts[c].ToString(CultureInfo.InvariantCulture), test[c].ToString(CultureInfo.InvariantCulture));
        table.AddEmptyRow();
        table.AddRow("total", "", "", splits.Train.Count.ToString(CultureInfo.InvariantCulture), splits.Test.Count.ToString(CultureInfo.InvariantCulture));

        int max = splits.TrainClassCounts.Max(), min = splits.TrainClassCounts.Min();
        console.MarkupLineInterpolated($"[bold]{splits.Name}[/]: {splits.NumClasses} classes, images {splits.Train.Shape.ToString()}, long-tail {config.ImbType.ToString().ToLowerInvariant()} imb-factor {config.ImbFactor.ToString(CultureInfo.InvariantCulture)} (seed {config.LongTailSeed})");
        console.Write(table);
        foreach (var (group, classes) in new[] { ("head", splits.Groups.Head), ("medium", splits.Groups.Medium), ("tail", splits.Groups.Tail) })
            console.MarkupLineInterpolated($"{group}: {classes.Length} classes, {classes.Sum(c => splits.TrainClassCounts[c])} train / {classes.Sum(c => test[c])} test images");
        console.MarkupLineInterpolated($"train {splits.Train.Count} images (max {max}, min {min}, ratio {(double)max / min:0.##}); test {splits.Test.Count} images");
        return 0;
    }
}
