using System.ComponentModel;
using H2T.Runs;
using H2T.Data;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class ImportSettings : DataOptions
{
    [CommandArgument(0,
        "<PYTORCH_CHECKPOINT>")] [Description(
        "a torch.save'd file: the reference's {state_dict_model, state_dict_classifier} dict or a state dict")]
    public string Source { get; init; } = "";
    [CommandOption("--backbone <NAME>")] [Description(
        "our backbone with the same layout (the reference's resnet32_fe is resnet32; default resnet32) [[backbone]]")]
    public string? Backbone { get; init; }
    [CommandOption("--classifier <KIND>")] [Description("default linear [[classifier]]")]
    public string? Classifier { get; init; }
    [CommandOption("--out <CHECKPOINT>")] [RunOption]
    [Description("the H2T.NET checkpoint to write (default: beside the source, .ckpt)")]
    public string? Out { get; init; }
    [CommandOption("--allow-missing")] [RunOption]
    [Description("import even when our model has tensors the file lacks (they stay initialised; each is listed)")]
    public bool AllowMissing { get; init; }
}

/// <summary>PyTorch -> H2T.NET: the reference's stage-I checkpoint becomes one that stage2/sweep/eval read.</summary>
public sealed class ImportCommand(IAnsiConsole console) : Command<ImportSettings>
{
    public override int Execute(CommandContext context, ImportSettings settings, CancellationToken cancellationToken)
    {
        if (!File.Exists(settings.Source)) throw new UsageException($"{settings.Source}: checkpoint not found");
        // The data and model flags are stage-I keys, bound as stage1 binds them.
        var bound = ConfigSupport.Bind(Configuration.StageMode.StageOne, settings);
        var data = bound.Data;
        CommandSupport.Start(settings);
        var output = settings.Out ?? Path.ChangeExtension(settings.Source.EndsWith(".pth.tar",
            StringComparison.Ordinal) ? settings.Source[..^4] : settings.Source, ".ckpt");
        var result = CommandSupport.Train(() =>
        {
            var splits = DatasetCatalog.Load(data);
            return PyTorchCheckpoint.Import(settings.Source, output, bound.StageOne.Backbone, bound.StageOne.Classifier,
                splits, data, settings.AllowMissing);
        });
        foreach (var line in result.Report) console.MarkupLineInterpolated($"  {line}");
        var meta = result.Meta;
        console.MarkupLineParts(
            $"imported {settings.Source} ({meta.Architecture}, {meta.InChannels} input channel(s), {meta.NumClasses} ",
            $"classes, {meta.TotalEpochs} epoch(s)) -> {output}");
        if (meta.Stage == "stage1") console.MarkupLineInterpolated($"next: h2t stage2 --from {output} --rho 0.25");
        else console.MarkupLineParts(
            $"a {meta.Stage} checkpoint ({meta.Classifier} classifier); next: h2t eval --checkpoint {output}");
        return 0;
    }
}

public sealed class ExportSettings : GlobalSettings
{
    [CommandArgument(0, "<CHECKPOINT>")] [Description("an H2T.NET checkpoint (stage I or II)")]
    public string Source { get; init; } = "";
    [CommandOption("--format <FORMAT>")] [Description(
        "onnx (a model for ONNX Runtime) or pytorch (a torch.load-able dict); default: from --out's extension, else " +
        "pytorch")]
    public string? Format { get; init; }
    [CommandOption("--out <FILE>")] [Description("the file to write (default: beside the source, .onnx or .pth)")]
    public string? Out { get; init; }

    public string ResolvedFormat => (Format ?? (Out?.EndsWith(".onnx",
        StringComparison.OrdinalIgnoreCase) == true ? "onnx" : "pytorch")).ToLowerInvariant();

    public override ValidationResult Validate() =>
        ResolvedFormat is not ("onnx" or "pytorch") ?
            ValidationResult.Error($"--format {Format}: expected onnx or pytorch") : base.Validate();
}

/// <summary>H2T.NET -> ONNX (<see cref="H2T.Onnx.OnnxExporter"/>) or PyTorch (torch.load gives {state_dict_model,
/// state_dict_classifier, epoch, best_acc1, h2t_meta}).</summary>
public sealed class ExportCommand(IAnsiConsole console) : Command<ExportSettings>
{
    public override int Execute(CommandContext context, ExportSettings settings, CancellationToken cancellationToken)
    {
        if (!File.Exists(settings.Source)) throw new UsageException($"{settings.Source}: checkpoint not found");
        CommandSupport.Start(settings);
        bool onnx = settings.ResolvedFormat == "onnx";
        var output = settings.Out ?? Path.ChangeExtension(settings.Source, onnx ? ".onnx" : ".pth");
        if (onnx)
        {
            var r = CommandSupport.Train(() => H2T.Onnx.OnnxExporter.Export(settings.Source, output));
            console.MarkupLineParts(
                $"exported {settings.Source} -> {output} (ONNX opset {H2T.Onnx.OnnxExporter.Opset}, {r.Nodes} nodes, ",
                $"{r.Bytes / 1e6:F1} MB; input 'image' float32 [[batch, C, H, W]] in [[0, 1]]; outputs 'logits', ",
                $"'probabilities')");
            console.MarkupLineInterpolated($"next: h2t predict --onnx {output} IMAGES...");
            return 0;
        }
        CommandSupport.Train(() => { PyTorchCheckpoint.Export(settings.Source, output); return 0; });
        console.MarkupLineParts(
            $"exported {settings.Source} -> {output} (torch.load: state_dict_model, state_dict_classifier, epoch, ",
            $"best_acc1, h2t_meta)");
        return 0;
    }
}
