using H2T.Data;
using H2T.Models;
using H2T.Settings;
using H2T.Runtime;
using static TorchSharp.torch;

namespace H2T.Interop;

/// <summary>
/// Where pretrained weights come from and what input they expect: a name (<see cref="PretrainedBackbone.Names"/>: the
/// ImageNet ResNet-18
/// that arrives with the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> NuGet package this library references), an
/// ONNX model of a ResNet (with the H2T.Onnx package: <see cref="IOnnxWeights"/>), or a <c>torch.save</c> file
/// (torchvision's state dicts, any
/// layout <see cref="PyTorchWeights"/> reads).
/// </summary>
public sealed record PretrainedSource(string Given, string Path, string Kind, string? Architecture, Normalization? Norm,
    int[]? ChannelOrder, string Origin)
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
    /// <summary>The NuGet package that ships CNTK's ImageNet ResNet-18 (MIT), and its files inside the
    /// package.</summary>
    public const string MlNetPackage = "microsoft.ml.dnnimagefeaturizer.resnet18", MlNetVersion = "0.24.0";
    const string MlNetModel = "tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx",
        MlNetPreprocess = "tools/DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx";
    /// <summary>Where the build copies the package's two files, under the application folder.</summary>
    public const string BundledFolder = "pretrained/mlnet-resnet18";

    /// <summary>Pretrained networks by name.</summary>
    public static NameTable<string> Names { get; } = new("pretrained network",
        [("mlnet:resnet18", "mlnet:resnet18"), ("cntk:resnet18", "mlnet:resnet18"), ("resnet18_cntk",
            "mlnet:resnet18")],
        "mlnet:resnet18 (CNTK's ImageNet ResNet-18 from the Microsoft.ML.DnnImageFeaturizer.ResNet18 NuGet package), " +
            "torchvision:ARCH[.VARIANT], hf-hub:OWNER/REPO, or the path of a .onnx, .safetensors or torch.save file");

    /// <summary>Resolves a name or a path (file checks, the preprocessing it needs) without loading the
    /// weights.</summary>
    public static PretrainedSource Resolve(string given, IProgress<DownloadProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(given);
        if (Names.TryParse(given, out _)) return MlNetResNet18(given);
        if (WeightDownloads.IsDownloadName(given))
        {
            var file = WeightDownloads.Fetch(given, progress);
            var torchvision = given.StartsWith("torchvision:", StringComparison.OrdinalIgnoreCase);
            var arch = torchvision ? WeightDownloads.TorchvisionEntry(given).Arch : HubArchitecture(given);
            // A ViT's normalisation from the name (the file has none): torchvision's are ImageNet's; timm's by tag.
            var norm = arch is null || !VisionTransformer.Configs.ContainsKey(arch) ? null
                : torchvision ? Normalization.ImageNet : HubNormalization(given);
            return SafeTensors.LooksLikeSafeTensors(file)
                ? new PretrainedSource(given, file, "safetensors", arch, norm, null, "Hugging Face hub safetensors")
                : new PretrainedSource(given, file, "torch.save", arch, norm, null, "torchvision weights");
        }
        if (!File.Exists(given))
            throw new ConfigException($"pretrained: {given}: file not found (expected {Names.Expected})");
        if (SafeTensors.LooksLikeSafeTensors(given))
            return new PretrainedSource(given, System.IO.Path.GetFullPath(given), "safetensors", null,
                SafeTensorsVitNormalization(given), null, "safetensors file");
        if (!TorchSaveReader.LooksLikeTorchSave(given))
        {
            if (Onnx is { } onnx && onnx.LooksLikeOnnx(given)) return onnx.Resolve(given);
            if (Onnx is null && given.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
                throw new ConfigException(
                    $"pretrained: {given}: {OptionalPackage.Missing(OptionalPackage.Onnx, "an ONNX model")}");
            throw new ConfigException(
                $"pretrained: {given}: neither ONNX, safetensors nor a torch.save file (expected {Names.Expected})");
        }
        return new PretrainedSource(given, System.IO.Path.GetFullPath(given), "torch.save", null, null, null,
            "torch.save file");
    }

    /// <summary>
    /// The normalisation the pretrained network was trained with, in our terms ((x / 255 - mean) / std on RGB): the
    /// one <see cref="Resolve"/> found (CNTK's from its preprocessing graph, an ONNX model's from the Sub / Div before
    /// its stem, else ImageNet's), a weight file's ImageNet's for the ImageNet ResNets and the ConvNeXts; null: the
    /// dataset's.
    /// </summary>
    public static Normalization? InputNormalization(PretrainedSource source, Backbone backbone)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Norm is { } norm) return norm;
        if (backbone is VisionTransformer && source.Kind == "torch.save")
        {
            // A torch.save file says its layout only by its keys: OpenCLIP's is CLIP's normalisation.
            var tensors = VisionTransformerWeights.ReadTensors(source.Path);
            try
            {
                return VisionTransformerWeights.Detect(tensors.Keys) is { } layout
                    ? VisionTransformerWeights.NormalizationOf(layout, tensors.Keys) : Normalization.ImageNet;
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
        }
        return backbone is ResNetImageNet or ConvNeXt or VisionTransformer ? Normalization.ImageNet : null;
    }

    /// <summary>The architecture a pretrained name's weights fill, from the name alone (nothing is read or
    /// downloaded): the NuGet ResNet-18's, a torchvision name's table entry, a hub ViT's; null when the name does not
    /// say (a file path, an unregistered hub model).</summary>
    public static string? ArchitectureOf(string given)
    {
        ArgumentNullException.ThrowIfNull(given);
        if (Names.TryParse(given, out _)) return "resnet18_cntk";
        if (!WeightDownloads.IsDownloadName(given)) return null;
        return given.StartsWith("torchvision:", StringComparison.OrdinalIgnoreCase)
            ? WeightDownloads.TorchvisionEntry(given).Arch : HubArchitecture(given);
    }

    /// <summary>The ViT a hub repository's name says (timm/vit_base_patch16_clip_224.openai: OpenAI's weights, trained
    /// with QuickGELU, so its quickgelu twin), when we register it.</summary>
    static string? HubArchitecture(string given)
    {
        var model = given["hf-hub:".Length..].Trim().Split('/')[^1];
        var dot = model.IndexOf('.', StringComparison.Ordinal);
        var (name, tag) = dot < 0 ? (model, "") : (model[..dot], model[(dot + 1)..]);
        if (tag.StartsWith("openai", StringComparison.OrdinalIgnoreCase) && name.Contains("_clip_",
            StringComparison.Ordinal) && !name.Contains("quickgelu", StringComparison.Ordinal))
            name = name.Replace("_clip_", "_clip_quickgelu_", StringComparison.Ordinal);
        if (name == "vit_base_patch16_224") name = "vit_b_16"; // timm's name of torchvision's shape
        return VisionTransformer.Configs.ContainsKey(name) ? name : null;
    }

    /// <summary>timm's normalisation of a ViT repository by its name: CLIP's for CLIP towers, ImageNet's for DINOv2 and
    /// in1k fine-tunes, else timm's ViT default (0.5 / 0.5: augreg and the original in21k weights).</summary>
    static Normalization HubNormalization(string given) =>
        given.Contains("clip", StringComparison.OrdinalIgnoreCase) ? VisionTransformerWeights.Clip
        : given.Contains("dinov2", StringComparison.OrdinalIgnoreCase) ? Normalization.ImageNet
        : VisionTransformerWeights.Inception;

    /// <summary>A ViT safetensors file's normalisation from its tensor names (timm's CLIP towers have norm_pre), null
    /// when it is no ViT.</summary>
    static Normalization? SafeTensorsVitNormalization(string path)
    {
        // The header's names are enough: Resolve must not read a 300 MB file that Load reads again.
        var names = SafeTensors.TensorNames(path);
        return VisionTransformerWeights.Detect(names) is { } layout
            ? VisionTransformerWeights.NormalizationOf(layout, names) : null;
    }

    /// <summary>Loads the weights; returns the lines that say what was loaded and what was not used.</summary>
    public static IReadOnlyList<string> Load(PretrainedSource source, Backbone backbone, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(backbone);
        if (source.Architecture is { } arch && !string.Equals(arch, backbone.Architecture,
            StringComparison.OrdinalIgnoreCase))
            throw new ConfigException(
                $"pretrained: {source.Given} is a {arch}; the backbone is {backbone.Architecture}: pass --backbone " +
                $"{arch}");
        if (backbone is VisionTransformer vit && source.Kind is "safetensors" or "torch.save")
            return VisionTransformerWeights.Load(source, vit, numClasses);
        return source.Kind switch
        {
            "onnx" => RequireOnnx(source.Given).Load(source, backbone, numClasses),
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
            var lines =
                new List<string> {
                $"pretrained: {source.Given} -> {source.Path} " +
                $"({source.Origin}{(metadata.TryGetValue("format", out var f) ? $", format {f}" : "")})" };
            lines.AddRange(StateDictLoader.Load(source.Path, "pretrained backbone", body, backbone).Lines());
            var fc = tensors.TryGetValue("fc.weight",
                out var w) ? $"the file's classifier is not used (its fc is [{string.Join(", ", w.shape)}]); " : "";
            lines.Add($"pretrained: {fc}the classifier is initialised afresh for {numClasses} classes");
            return lines;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Loads from a name or path (<see cref="Resolve"/> first).</summary>
    public static IReadOnlyList<string> Load(string nameOrPath, Backbone backbone,
        int numClasses) => Load(Resolve(nameOrPath), backbone, numClasses);

    /// <summary>A download's progress as one line with a bar, for logs and terminals.</summary>
    public static string Describe(DownloadProgress p)
    {
        static string Mb(long b) => (b / 1048576.0).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
        if (p.Total is not { } total || total <= 0) return $"download {p.Url}: {Mb(p.Bytes)} MB";
        int filled = (int)Math.Round(20.0 * p.Bytes / total);
        return $"download [{new string('#', filled)}{new string('.', 20 - filled)}] {100.0 * p.Bytes / total,3:0}% " +
            $"{Mb(p.Bytes)} / {Mb(total)} MB {p.Url}";
    }

    static List<string> LoadTorch(string path, Backbone backbone, int numClasses)
    {
        using var weights = PyTorchWeights.Read(path);
        var lines = new List<string> { $"pretrained: {path} ({weights.Layout})" };
        lines.AddRange(StateDictLoader.Load(path, "pretrained backbone", weights.Backbone, backbone).Lines());
        var fc = weights.Classifier.TryGetValue("fc.weight",
            out var w) ? $" (its fc is [{string.Join(", ", w.shape)}])" : "";
        lines.Add(weights.Classifier.Count > 0
            ? $"pretrained: the file's classifier is not used{fc}; the classifier is initialised afresh for " +
                $"{numClasses} classes"
            : $"pretrained: the classifier is initialised afresh for {numClasses} classes");
        lines.AddRange(weights.Notes.Select(n => "pretrained: " + n));
        return lines;
    }

    static PretrainedSource MlNetResNet18(string given)
    {
        var onnx = RequireOnnx(given);
        var model = Locate(MlNetModel);
        var prep = Locate(MlNetPreprocess);
        var (order, norm) = onnx.ReadCntkPreprocessing(prep);
        return new PretrainedSource(given, model, "onnx", "resnet18_cntk", norm, order,
            $"NuGet {MlNetPackage} {MlNetVersion}, CNTK 2.6 ONNX; preprocessing from " +
                $"{System.IO.Path.GetFileName(prep)}");
    }

    /// <summary>ONNX weights, when the application references H2T.Onnx.</summary>
    static IOnnxWeights? Onnx => OptionalPackage.FromOnnx<IOnnxWeights>();

    static IOnnxWeights RequireOnnx(string given) => Onnx
        ?? throw new ConfigException(
            $"pretrained: {given}: {OptionalPackage.Missing(OptionalPackage.Onnx, "an ONNX model")}");

    /// <summary>The package file copied next to the application at build time, else the restored package in the NuGet
    /// cache.</summary>
    static string Locate(string inPackage)
    {
        var name = System.IO.Path.GetFileName(inPackage);
        var bundled = System.IO.Path.Combine(AppContext.BaseDirectory, BundledFolder, name);
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } np ? np
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget",
                "packages");
        var cached = System.IO.Path.Combine(root, MlNetPackage, MlNetVersion, inPackage);
        return new[] { bundled, cached }.FirstOrDefault(File.Exists)
            ?? throw new ConfigException(
                $"pretrained mlnet:resnet18: {name} not found at {bundled} nor {cached}; it comes with the NuGet " +
                $"package " +
                                         $"Microsoft.ML.DnnImageFeaturizer.ResNet18 {MlNetVersion}, which this " +
                                             $"repository's build restores and copies; a project of yours that uses " +
                                             $"H2T.Core from NuGet adds " +
                                         $"<PackageDownload Include=\"Microsoft.ML.DnnImageFeaturizer.ResNet18\" " +
                                             $"Version=\"[{MlNetVersion}]\" /> to restore it");
    }
}

/// <summary>
/// ONNX weights in: what the H2T.Onnx package adds to <see cref="PretrainedBackbone"/> (ONNX models are protobuf,
/// which the core does not read).
/// </summary>
public interface IOnnxWeights
{
    /// <summary>Whether <paramref name="path"/> is an ONNX model (by name or its first byte).</summary>
    bool LooksLikeOnnx(string path);

    /// <summary>An ONNX ResNet file as a source, with the input map it expects.</summary>
    PretrainedSource Resolve(string given);

    /// <summary>CNTK's preprocessing graph: the channel order and the normalisation, in our terms.</summary>
    (int[] Order, Normalization Norm) ReadCntkPreprocessing(string path);

    /// <summary>Loads an ONNX source's backbone weights; returns the lines that say what was loaded.</summary>
    IReadOnlyList<string> Load(PretrainedSource source, Backbone backbone, int numClasses);
}
