using H2T.Data;
using H2T.Interop;
using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Onnx;

/// <summary>
/// ONNX ResNets as pretrained weights (<see cref="OnnxResNetReader"/>): CNTK's exports with their preprocessing graph,
/// torch's exports and ours. <see cref="PretrainedBackbone"/> finds this class when the application references the
/// package.
/// </summary>
public sealed class OnnxWeights : IOnnxWeights
{
    /// <inheritdoc/>
    public bool LooksLikeOnnx(string path) => OnnxResNetReader.LooksLikeOnnx(path);

    /// <inheritdoc/>
    public PretrainedSource Resolve(string given)
    {
        var model = OnnxResNetReader.Parse(given);
        var full = Path.GetFullPath(given);
        if (model.ProducerName.StartsWith("CNTK", StringComparison.OrdinalIgnoreCase))
        {
            // CNTK's exports take the featurizer's preprocessing, which ships as its own graph beside the model.
            var dir = Path.GetDirectoryName(full)!;
            var prep = new[] { Path.Combine(dir, "ResNetPreprocess.onnx"), Path.Combine(dir, "..", "ResNetPrepOnnx",
                "ResNetPreprocess.onnx") }
                .FirstOrDefault(File.Exists)
                ?? throw new ConfigException($"pretrained: {given}: a CNTK model needs its preprocessing graph " +
                    "(ResNetPreprocess.onnx beside it or in ../ResNetPrepOnnx/), which says its channel order and " +
                        "mean; " +
                    "or use --pretrained mlnet:resnet18");
            var (order, norm) = ReadCntkPreprocessing(prep);
            return new PretrainedSource(given, full, "onnx", null, norm, order,
                $"{model.ProducerName} {model.ProducerVersion} ONNX, preprocessing from {Path.GetFullPath(prep)}");
        }
        // The graph's own input map (our exports carry it), else ImageNet's: torch exports of torchvision have none.
        return new PretrainedSource(given, full, "onnx", null,
            OnnxResNetReader.InputTransformOf(given, model) ?? Normalization.ImageNet, null,
            $"{model.ProducerName} {model.ProducerVersion} ONNX".Trim());
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> Load(PretrainedSource source, Backbone backbone, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(backbone);
        using var onnx = OnnxResNetReader.Read(source.Path);
        var blocks = OnnxResNetReader.Describe(onnx.Blocks);
        if (!string.Equals(onnx.Architecture, backbone.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ConfigException($"pretrained: {source.Given} is a {onnx.Architecture} (blocks {blocks}); " +
                $"the backbone is {backbone.Architecture}: pass --backbone {onnx.Architecture}");
        if (source.Reordered)
        {
            // Our network takes RGB: the first convolution's input channels are put in the file's order once, exactly.
            var w = onnx.Backbone["conv1.weight"];
            var inverse = new long[source.ChannelOrder!.Length];
            for (int j = 0; j < inverse.Length; j++) inverse[source.ChannelOrder[j]] = j;
            using var index = tensor(inverse);
            onnx.Backbone["conv1.weight"] = w.index_select(1, index);
            w.Dispose();
        }
        var lines = new List<string>
        {
            $"pretrained: {source.Given} -> {source.Path} ({source.Origin}; {onnx.Architecture}, blocks {blocks})",
        };
        lines.AddRange(StateDictLoader.Load(source.Path, "pretrained backbone", onnx.Backbone, backbone).Lines());
        if (source.Reordered)
            lines.Add("pretrained: the network was trained on channels in the order " +
                $"[{string.Join(", ", source.ChannelOrder!.Select(c => "RGB"[c]))}]; its first convolution is " +
                    $"reordered to take RGB");
        lines.AddRange(onnx.Notes.Select(n => "pretrained: " + n));
        lines.Add($"pretrained: the classifier is initialised afresh for {numClasses} classes");
        return lines;
    }

    /// <summary>
    /// CNTK's preprocessing graph: Split the RGB input by channel, Concat in the network's order, Sub a mean image (the
    /// input in 0..255). Returns the order (network channel j is RGB channel order[j]) and, in our terms, the
    /// normalisation: the mean image's per-channel means / 255 on RGB, std 1 / 255 (there is no division).
    /// </summary>
    public (int[] Order, Normalization Norm) ReadCntkPreprocessing(string path)
    {
        var g = OnnxResNetReader.Parse(path).Graph;
        var split = g.Node.FirstOrDefault(n => n.OpType == "Split");
        var concat = g.Node.FirstOrDefault(n => n.OpType == "Concat");
        var sub = g.Node.FirstOrDefault(n => n.OpType == "Sub");
        if (split is null || concat is null || sub is null)
            throw new DataFormatException(
                $"{path}: expected CNTK's preprocessing (Split, Concat, Sub of a mean image); " +
                $"found {string.Join(", ", g.Node.Select(n => n.OpType))}");
        var order = concat.Input.Select(i => split.Output.IndexOf(i)).ToArray();
        if (order.Length != 3 || order.Any(o => o < 0) || order.Distinct().Count() != 3)
            throw new DataFormatException($"{path}: the Concat does not reorder the Split's three channels");
        var meanName = sub.Input[1];
        var mean = g.Initializer.FirstOrDefault(t => t.Name == meanName)
            ?? throw new DataFormatException($"{path}: the Sub's second input '{meanName}' is not an initializer");
        if (!sub.Input[0].Equals(concat.Output[0], StringComparison.Ordinal)
            || concat.Attribute.FirstOrDefault(a => a.Name == "axis")?.I != 1)
            throw new DataFormatException(
                $"{path}: expected the Sub to take the channel Concat (axis 1) of the Split input");
        var values = OnnxResNetReader.FloatsOf(mean);
        long perChannel = values.Length / 3;
        var rgbMean = new float[3];
        for (int j = 0; j < 3; j++)
        {
            double sum = 0;
            for (long i = 0; i < perChannel; i++) sum += values[j * perChannel + i];
            rgbMean[order[j]] = (float)(sum / perChannel / 255.0);
        }
        return (order, new Normalization(rgbMean, [1f / 255, 1f / 255, 1f / 255]));
    }
}
