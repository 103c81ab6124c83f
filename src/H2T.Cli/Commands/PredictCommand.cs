using System.ComponentModel;
using H2T.Inference;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class PredictSettings : InferenceSettings
{
    [CommandArgument(0,
        "<PATH>")] [Description(
        "image files (.jpg/.jpeg/.png), folders (searched recursively) or list files ('relative/path [[label]]' " +
            "lines)")]
    public string[] Inputs { get; init; } = [];
    [CommandOption("--checkpoint <CKPT>")] [Description("an H2T.NET checkpoint, run by TorchSharp as eval runs it")]
    public string? Checkpoint { get; init; }
    [CommandOption("--onnx <MODEL>")] [Description(
        "an exported ONNX model, run by ONNX Runtime (libtorch is not loaded)")]
    public string? Onnx { get; init; }
    [CommandOption("--top-k <K>")] [DefaultValue(5)]
    public int TopK { get; init; } = 5;
    [CommandOption("--batch-size <N>")] [DefaultValue(64)]
    public int BatchSize { get; init; } = 64;
    [CommandOption("--out <FILE>")] [Description(
        "write every prediction to FILE.jsonl or FILE.csv (written atomically at the end)")]
    public string? Out { get; init; }
    [CommandOption("--strict")] [Description("exit 2 if any image fails to decode (default: report it and go on)")]
    public bool Strict { get; init; }

    public override ValidationResult Validate() =>
        (Checkpoint is null) == (Onnx is null) ?
            ValidationResult.Error("give exactly one of --checkpoint CKPT or --onnx MODEL")
        : Inputs.Length == 0 ? ValidationResult.Error("PATH: give at least one image, folder or list file")
        : TopK < 1 ? ValidationResult.Error($"--top-k {TopK}: expected >= 1")
        : BatchSize < 1 ? ValidationResult.Error($"--batch-size {BatchSize}: expected >= 1")
        : Out is not null && PredictionWriter.FormatOf(Out) is null ?
            ValidationResult.Error($"--out {Out}: expected a .jsonl or .csv file name")
        : Onnx is not null && Precision is not null ?
            ValidationResult.Error("--precision applies to --checkpoint (an ONNX model is fp32)")
        : base.Validate();
}

/// <summary>Classifies new images with a trained model: a table on the terminal, or JSONL / CSV.</summary>
public sealed class PredictCommand(IAnsiConsole console) : Command<PredictSettings>
{
    public override int Execute(CommandContext context, PredictSettings settings, CancellationToken cancellationToken)
    {
        var (summary, engine) = CommandSupport.Train(() =>
        {
            var options = new ClassifierOptions
            {
                Threads = settings.Threads,
                Precision = settings.PrecisionAsked,
                Engine = settings.EngineAsked,
                TestTime = settings.TestTimeAsked,
            };
            using var model = ImageClassifier.Load(settings.Checkpoint ?? settings.Onnx!, options);
            var inputs = PredictionInputs.Resolve(settings.Inputs, model.ClassNames);
            console.MarkupLineInterpolated($"[bold]{model.Card}[/] on {model.Engine}");
            var shape = model.Card.Preprocessing.Shape;
            console.MarkupLineInterpolated(
                $"{model.TestTime?.Describe(shape.Height, shape.Width) ?? "test-time ensemble: off (1 view)"}");
            using var writer = settings.Out is null ? null : new PredictionWriter(settings.Out);
            if (writer is null)
            {
                var terminal = new PredictionWriter.Terminal(console);
                var printed = PredictionJob.Run(model, inputs, settings.BatchSize, settings.TopK, terminal.Add,
                    cancellationToken);
                terminal.Finish();
                return (printed, model.Engine);
            }
            // Into a file: a progress bar on a terminal, a status line every 10 s in a log.
            PredictionSummary s;
            if (console.Profile.Capabilities.Interactive)
                s = console.Progress().Start(ctx =>
                {
                    var task = ctx.AddTask("predict", maxValue: Math.Max(1, inputs.Count()));
                    return PredictionJob.Run(model, inputs, settings.BatchSize, settings.TopK,
                        row => { writer.Write(row); task.Increment(1); }, cancellationToken);
                });
            else
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                int done = 0;
                s = PredictionJob.Run(model, inputs, settings.BatchSize, settings.TopK, row =>
                {
                    writer.Write(row);
                    if (++done % 256 == 0 && clock.Elapsed.TotalSeconds >= 10)
                    {
                        console.MarkupLineInterpolated($"  {done} images ...");
                        clock.Restart();
                    }
                }, cancellationToken);
            }
            writer.Commit();
            return (s, model.Engine);
        });
        var acc = summary.Accuracy is { } a ? $", top-1 accuracy {a:F2}% over {summary.Labelled} labelled" : "";
        console.MarkupLineParts(
            $"{summary.Images} image(s), {summary.Failed} failed{acc}; {summary.ImagesPerSecond:F1} images/s ",
                $"({engine})");
        if (settings.Out is not null) console.MarkupLineInterpolated($"wrote {settings.Out}");
        if (summary.Failed == summary.Images) { console.MarkupLine(
            "[red]error:[/] no image could be read"); return CliApp.UsageError; }
        return settings.Strict && summary.Failed > 0 ? CliApp.UsageError : 0;
    }
}
