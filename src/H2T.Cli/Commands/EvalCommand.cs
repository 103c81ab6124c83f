using System.ComponentModel;
using H2T.Runs;
using H2T.Data;
using H2T.Inference;
using H2T.Evaluation;
using H2T.Models;
using H2T.Settings;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class EvalSettings : InferenceSettings
{
    [CommandOption("--checkpoint <PATH>")] [Description("a stage1 or stage2 checkpoint")]
    public string Checkpoint { get; init; } = "";
    [CommandOption("--data <PATH>")] [Description("dataset files, if not where the checkpoint's training found them")]
    public string? DataPath { get; init; }
    [CommandOption("--dataset <NAME>")] [Description(
        "evaluate on another dataset with the same classes (default: the checkpoint's)")]
    public string? Dataset { get; init; }
    [CommandOption("--out <FILE>")] [Description(
        "write the full evaluation (per-class accuracy, confusion matrix, ECE) as JSON")]
    public string? Out { get; init; }
    [CommandOption("--batch-size <N>")] [DefaultValue(256)]
    public int BatchSize { get; init; } = 256;

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Checkpoint) ? ValidationResult.Error("--checkpoint: a checkpoint path is required")
        : BatchSize < 1 ? ValidationResult.Error($"--batch-size {BatchSize}: expected >= 1")
        : base.Validate();
}

public sealed class EvalCommand(IAnsiConsole console) : Command<EvalSettings>
{
    public override int Execute(CommandContext context, EvalSettings settings, CancellationToken cancellationToken)
    {
        // Parsed once, when Spectre bound the options (ComputeSettings.Validate); passed on as values.
        var (precision, engine, testTime) = (settings.PrecisionAsked, settings.EngineAsked, settings.TestTimeAsked);
        var device = CommandSupport.Start(settings);
        var evaluation = CommandSupport.Train(() =>
            ImageClassifier.EvaluationEngine(settings.Checkpoint, precision, engine) == InferenceEngine.OnnxRuntime
                ? ImageClassifier.EvaluateOnOnnxRuntime(settings.Checkpoint, settings.Dataset, settings.DataPath,
                    precision, settings.Threads, settings.BatchSize, testTime)
                : Evaluator.EvaluateCheckpoint(settings.Checkpoint, device, settings.Dataset, settings.DataPath,
                    precision, settings.BatchSize, testTime));
        Write(console, evaluation);
        if (settings.Out is not null)
        {
            AtomicFile.WriteJson(settings.Out, evaluation.Result);
            console.MarkupLineInterpolated($"wrote {settings.Out}");
        }
        return 0;
    }

    static void Write(IAnsiConsole console, CheckpointEvaluation evaluation)
    {
        var (meta, splits, r, precision, engine) = evaluation;
        var p = MixedPrecision.Name(precision);
        console.MarkupLineParts(
            $"[bold]{meta.Stage}[/] {meta.Architecture} on {splits.Name} ({r.Samples} test images), epoch ",
            $"{meta.Epoch + 1}/{meta.TotalEpochs}, evaluated in ",
            $"{p}{(p != meta.Precision ? $" (trained in {meta.Precision})" : "")} on {engine}");
        var shape = splits.Test.Shape;
        console.MarkupLineInterpolated(
            $"{evaluation.TestTime?.Describe(shape.Height, shape.Width) ?? "test-time ensemble: off (1 view)"}");
        var t = new Table().Border(TableBorder.Rounded).AddColumns("class", "name", "group", "train images",
            "accuracy %");
        for (int c = 0; c < splits.NumClasses; c++)
            t.AddRow(c.ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(splits.ClassNames[c]),
                splits.Groups.GroupOf(c),
                splits.TrainClassCounts[c].ToString(System.Globalization.CultureInfo.InvariantCulture),
                    r.PerClassAccuracy[c].ToString("F2", System.Globalization.CultureInfo.InvariantCulture));
        if (splits.NumClasses <= 100) console.Write(t);
        console.MarkupLineParts(
            $"top-1 [bold]{r.Top1:F2}[/]  top-5 {r.Top5:F2}  head {r.Head:F2}  medium {r.Medium:F2}  tail ",
            $"{r.Tail:F2}  ECE {r.Ece:F2}  NLL {r.Nll:F4}");
    }
}
