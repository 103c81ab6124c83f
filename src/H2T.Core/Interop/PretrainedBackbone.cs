using H2T.Data;
using H2T.Models;
using H2T.Settings;
using Onnx;
using static TorchSharp.torch;

namespace H2T.Interop;

/// <summary>
/// Where pretrained weights come from and what input they expect: a name (<see cref="Names"/>: the ImageNet ResNet-18
/// that arrives with the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> NuGet package this library references), an
/// ONNX model of a ResNet (<see cref="OnnxResNetReader"/>), or a <c>torch.save</c> file (torchvision's state dicts, any
/// layout <see cref="PyTorchWeights"/> reads).
/// </summary>
public sealed record PretrainedSource(string Given, string Path, string Kind, string? Architecture, Normalization? Norm, int[]? ChannelOrder, string Origin)
{
    /// <summary>Whether the file's network takes its channels in another order than RGB (<see cref="ChannelOrder"/>:
    /// network channel j is RGB channel order[j]; CNTK's is BGR, [2, 1, 0]).</summary>
    public bool Reordered => ChannelOrder is { } o && !o.SequenceEqual(Enumerable.Range(0, o.Length));
}

/// <summary>
/// Initialises a backbone from pretrained weights, the usual start on real long-tailed data. Strict: every backbone
/// tensor must be in the source with its shape. The source's classifier is not used; ours starts fresh for the
/// dataset's classes. The source also says how images must be normalised (<see cref="InputNormalization"/>).
/// </summary>
public static class PretrainedBackbone
{
    /// <summary>The NuGet package that ships CNTK's ImageNet ResNet-18 (MIT), and its files inside the package.</summary>
    public const string MlNetPackage = "microsoft.ml.dnnimagefeaturizer.resnet18", MlNetVersion = "0.24.0";
    const string MlNetModel = "tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx", MlNetPreprocess = "tools/DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx";
    /// <summary>Where the build copies the package's two files, under the application folder.</summary>
    public const string BundledFolder = "pretrained/mlnet-resnet18";

    /// <summary>Pretrained networks by name.</summary>
    public static NameTable<string> Names { get; } = new("pretrained network",
        [("mlnet:resnet18", "mlnet:resnet18"), ("cntk:resnet18", "mlnet:resnet18"), ("resnet18_cntk", "mlnet:resnet18")],
        "mlnet:resnet18 (CNTK's ImageNet ResNet-18 from the Microsoft.ML.DnnImageFeaturizer.ResNet18 NuGet package), torchvision:ARCH[.VARIANT], hf-hub:OWNER/REPO, or the path of a .onnx, .safetensors or torch.save file");

    /// <summary>Resolves a name or a path (file checks, the preprocessing it needs) without loading the weights.</summary>
    public static PretrainedSource Resolve(string given, IProgress<DownloadProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(given);
        if (Names.TryParse(given, out _)) return MlNetResNet18(given);
        if (WeightDownloads.IsDownloadName(given))
        {
            var file = WeightDownloads.Fetch(given, progress);
            var arch = given.StartsWith("torchvision:", StringComparison.OrdinalIgnoreCase) ? WeightDownloads.TorchvisionEntry(given).Arch : null;
            return SafeTensors.LooksLikeSafeTensors(file)
                ? new PretrainedSource(given, file, "safetensors", arch, null, null, "Hugging Face hub safetensors")
                : new PretrainedSource(given, file, "torch.save", arch, null, null, "torchvision weights");
        }
        if (!File.Exists(given))
            throw new ConfigException($"pretrained: {given}: file not found (expected {Names.Expected})");
        if (SafeTensors.LooksLikeSafeTensors(given))
            return new PretrainedSource(given, System.IO.Path.GetFullPath(given), "safetensors", null, null, null, "safetensors file");
        if (OnnxResNetReader.LooksLikeOnnx(given))
        {
            var model = OnnxResNetReader.Parse(given);
            if (model.ProducerName.StartsWith("CNTK", StringComparison.OrdinalIgnoreCase))
            {
                // CNTK's exports take the featurizer's preprocessing, which ships as its own graph beside the model.
                var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(given))!;
                var prep = new[] { System.IO.Path.Combine(dir, "ResNetPreprocess.onnx"), System.IO.Path.Combine(dir, "..", "ResNetPrepOnnx", "ResNetPreprocess.onnx") }.FirstOrDefault(File.Exists)
                    ?? throw new ConfigException($"pretrained: {given}: a CNTK model needs its preprocessing graph (ResNetPreprocess.onnx beside it or in ../ResNetPrepOnnx/), which says its channel order and mean; or use --pretrained mlnet:resnet18");
                var (order, norm) = ReadCntkPreprocessing(prep);
                return new PretrainedSource(given, System.IO.Path.GetFullPath(given), "onnx", null, norm, order, $"{model.ProducerName} {model.ProducerVersion} ONNX, preprocessing from {System.IO.Path.GetFullPath(prep)}");
            }
            // The graph's own input map (our exports carry it), else ImageNet's: torch exports of torchvision have none.
            return new PretrainedSource(given, System.IO.Path.GetFullPath(given), "onnx", null,
                OnnxResNetReader.InputTransformOf(given, model) ?? Normalization.ImageNet, null, $"{model.ProducerName} {model.ProducerVersion} ONNX".Trim());
        }
        if (!TorchSaveReader.LooksLikeTorchSave(given))
            throw new ConfigException($"pretrained: {given}: neither ONNX, safetensors nor a torch.save file (expected {Names.Expected})");
        return new PretrainedSource(given, System.IO.Path.GetFullPath(given), "torch.save", null, null, null, "torch.save file");
    }

    /// <summary>
    /// The normalisation the pretrained network was trained with, in our terms ((x / 255 - mean) / std on RGB): the
    /// one <see cref="Resolve"/> found (CNTK's from its preprocessing graph, an ONNX model's from the Sub / Div before
    /// its stem, else ImageNet's), a weight file's ImageNet's for the ImageNet ResNets; null: the dataset's.
    /// </summary>
    public static Normalization? InputNormalization(PretrainedSource source, Backbone backbone)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source.Norm ?? (backbone is ResNetImageNet ? Normalization.ImageNet : null);
    }

    /// <summary>Loads the weights; returns the lines that say what was loaded and what was not used.</summary>
    public static IReadOnlyList<string> Load(PretrainedSource source, Backbone backbone, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(backbone);
        if (source.Architecture is { } arch && !string.Equals(arch, backbone.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ConfigException($"pretrained: {source.Given} is a {arch}; the backbone is {backbone.Architecture}: pass --backbone {arch}");
        return source.Kind switch
        {
            "onnx" => LoadOnnx(source, backbone, numClasses),
            "safetensors" => LoadSafeTensors(source, backbone, numClasses),
            _ => LoadTorch(source.Path, backbone, numClasses),
        };
    }

    static List<string> LoadSafeTensors(PretrainedSource source, Backbone backbone, int numClasses)
    {
        var (tensors, metadata) = SafeTensors.Read(source.Path);
        try
        {
            // timm's ResNets name their layers as torchvision does; the classifier (fc.*) is not used.
            var (body, _) = PyTorchWeights.SplitClassifier(tensors);
            var lines = new List<string> { $"pretrained: {source.Given} -> {source.Path} ({source.Origin}{(metadata.TryGetValue("format", out var f) ? $", format {f}" : "")})" };
            lines.AddRange(StateDictLoader.Load(source.Path, "pretrained backbone", body, backbone).Lines());
            var fc = tensors.TryGetValue("fc.weight", out var w) ? $"the file's classifier is not used (its fc is [{string.Join(", ", w.shape)}]); " : "";
            lines.Add($"pretrained: {fc}the classifier is initialised afresh for {numClasses} classes");
            return lines;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Loads from a name or path (<see cref="Resolve"/> first).</summary>
    public static IReadOnlyList<string> Load(string nameOrPath, Backbone backbone, int numClasses) => Load(Resolve(nameOrPath), backbone, numClasses);

    /// <summary>A download's progress as one line with a bar, for logs and terminals.</summary>
    public static string Describe(DownloadProgress p)
    {
        static string Mb(long b) => (b / 1048576.0).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
        if (p.Total is not { } total || total <= 0) return $"download {p.Url}: {Mb(p.Bytes)} MB";
        int filled = (int)Math.Round(20.0 * p.Bytes / total);
        return $"download [{new string('#', filled)}{new string('.', 20 - filled)}] {100.0 * p.Bytes / total,3:0}% {Mb(p.Bytes)} / {Mb(total)} MB {p.Url}";
    }

    static List<string> LoadTorch(string path, Backbone backbone, int numClasses)
    {
        using var weights = PyTorchWeights.Read(path);
        var lines = new List<string> { $"pretrained: {path} ({weights.Layout})" };
        lines.AddRange(StateDictLoader.Load(path, "pretrained backbone", weights.Backbone, backbone).Lines());
        var fc = weights.Classifier.TryGetValue("fc.weight", out var w) ? $" (its fc is [{string.Join(", ", w.shape)}])" : "";
        lines.Add(weights.Classifier.Count > 0
            ? $"pretrained: the file's classifier is not used{fc}; the classifier is initialised afresh for {numClasses} classes"
            : $"pretrained: the classifier is initialised afresh for {numClasses} classes");
        lines.AddRange(weights.Notes.Select(n => "pretrained: " + n));
        return lines;
    }

    static List<string> LoadOnnx(PretrainedSource source, Backbone backbone, int numClasses)
    {
        using var onnx = OnnxResNetReader.Read(source.Path);
        if (!string.Equals(onnx.Architecture, backbone.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ConfigException($"pretrained: {source.Given} is a {onnx.Architecture} (blocks {OnnxResNetReader.Describe(onnx.Blocks)}); " +
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
        var lines = new List<string> { $"pretrained: {source.Given} -> {source.Path} ({source.Origin}; {onnx.Architecture}, blocks {OnnxResNetReader.Describe(onnx.Blocks)})" };
        lines.AddRange(StateDictLoader.Load(source.Path, "pretrained backbone", onnx.Backbone, backbone).Lines());
        if (source.Reordered) lines.Add($"pretrained: the network was trained on channels in the order [{string.Join(", ", source.ChannelOrder!.Select(c => "RGB"[c]))}]; its first convolution is reordered to take RGB");
        lines.AddRange(onnx.Notes.Select(n => "pretrained: " + n));
        lines.Add($"pretrained: the classifier is initialised afresh for {numClasses} classes");
        return lines;
    }

    static PretrainedSource MlNetResNet18(string given)
    {
        var model = Locate(MlNetModel);
        var prep = Locate(MlNetPreprocess);
        var (order, norm) = ReadCntkPreprocessing(prep);
        return new PretrainedSource(given, model, "onnx", "resnet18_cntk", norm, order,
            $"NuGet {MlNetPackage} {MlNetVersion}, CNTK 2.6 ONNX; preprocessing from {System.IO.Path.GetFileName(prep)}");
    }

    /// <summary>The package file copied next to the application at build time, else the restored package in the NuGet cache.</summary>
    static string Locate(string inPackage)
    {
        var name = System.IO.Path.GetFileName(inPackage);
        var bundled = System.IO.Path.Combine(AppContext.BaseDirectory, BundledFolder, name);
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } np ? np
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var cached = System.IO.Path.Combine(root, MlNetPackage, MlNetVersion, inPackage);
        return new[] { bundled, cached }.FirstOrDefault(File.Exists)
            ?? throw new ConfigException($"pretrained mlnet:resnet18: {name} not found at {bundled} nor {cached}; it comes with the NuGet package " +
                                         $"Microsoft.ML.DnnImageFeaturizer.ResNet18 {MlNetVersion}, which this repository's build restores and copies; a project of yours that uses H2T.Core from NuGet adds " +
                                         $"<PackageDownload Include=\"Microsoft.ML.DnnImageFeaturizer.ResNet18\" Version=\"[{MlNetVersion}]\" /> to restore it");
    }

    /// <summary>
    /// CNTK's preprocessing graph: Split the RGB input by channel, Concat in the network's order, Sub a mean image (the
    /// input in 0..255). Returns the order (network channel j is RGB channel order[j]) and, in our terms, the
    /// normalisation: the mean image's per-channel means / 255 on RGB, std 1 / 255 (there is no division).
    /// </summary>
    internal static (int[] Order, Normalization Norm) ReadCntkPreprocessing(string path)
    {
        var g = OnnxResNetReader.Parse(path).Graph;
        var split = g.Node.FirstOrDefault(n => n.OpType == "Split");
        var concat = g.Node.FirstOrDefault(n => n.OpType == "Concat");
        var sub = g.Node.FirstOrDefault(n => n.OpType == "Sub");
        if (split is null || concat is null || sub is null)
            throw new DataFormatException($"{path}: expected CNTK's preprocessing (Split, Concat, Sub of a mean image); found {string.Join(", ", g.Node.Select(n => n.OpType))}");
        var order = concat.Input.Select(i => split.Output.IndexOf(i)).ToArray();
        if (order.Length != 3 || order.Any(o => o < 0) || order.Distinct().Count() != 3)
            throw new DataFormatException($"{path}: the Concat does not reorder the Split's three channels");
        var meanName = sub.Input[1];
        var mean = g.Initializer.FirstOrDefault(t => t.Name == meanName)
            ?? throw new DataFormatException($"{path}: the Sub's second input '{meanName}' is not an initializer");
        if (!sub.Input[0].Equals(concat.Output[0], StringComparison.Ordinal) || concat.Attribute.FirstOrDefault(a => a.Name == "axis")?.I != 1)
            throw new DataFormatException($"{path}: expected the Sub to take the channel Concat (axis 1) of the Split input");
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
