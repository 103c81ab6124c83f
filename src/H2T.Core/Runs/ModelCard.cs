using System.Globalization;
using System.Reflection;
using System.Text.Json;
using H2T.Data;
using H2T.Settings;

namespace H2T.Runs;

/// <summary>
/// What a user of a trained model needs besides its weights: the class names, the input transform, and where the
/// model came from. Checkpoints carry it in their metadata; ONNX exports in <c>metadata_props</c> (<see
/// cref="MetadataKeys"/>).
/// </summary>
public sealed record ModelCard(string Architecture, string Classifier, string Dataset, IReadOnlyList<string> ClassNames,
    ImagePreprocessing Preprocessing, string Precision, string Stage)
{
    public const string InputDescription =
        "float32 N x C x H x W, RGB (C = 3) or grey (C = 1) pixel values / 255 in [0, 1], " +
        "after the resize and center crop in metadata key h2t.preprocessing; normalisation is inside the graph";

    /// <summary>Metadata keys of an exported ONNX model.</summary>
    public static class MetadataKeys
    {
        public const string ClassNames = "h2t.class_names";       // JSON array, index order
        // JSON: channels, height, width, resize_shorter, mean, std
        public const string Preprocessing = "h2t.preprocessing";
        public const string Architecture = "h2t.architecture";
        public const string Classifier = "h2t.classifier";
        public const string Dataset = "h2t.dataset";
        public const string Stage = "h2t.stage";
        public const string Input = "h2t.input";
        public const string FormatVersion = "h2t.format_version";
    }

    public static string LibraryVersion =>
        typeof(ModelCard).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            .Split('+')[0] ?? "0.0.0";

    /// <summary>
    /// The card of an H2T.NET checkpoint. Checkpoints written before class names and preprocessing were recorded get
    /// them from their data config, which needs the data where training read it.
    /// </summary>
    public static ModelCard FromCheckpoint(string path)
    {
        var meta = Checkpoint.ReadMeta(path);
        IReadOnlyList<string>? names = meta.ClassNames;
        var pre = meta.Preprocessing;
        if (names is null || pre is null)
        {
            DatasetSplits splits;
            try { splits = DatasetCatalog.Load(CheckpointData.Of(path, meta)); }
            catch (Exception e) when (e is IOException or DataFormatException or ArgumentException)
            {
                throw new ConfigException(
                    $"{path}: this checkpoint predates recorded class names and preprocessing, and its training data " +
                                          $"is needed to recover them: {e.Message}");
            }
            names ??= splits.ClassNames;
            pre ??= ImagePreprocessing.Of(splits);
        }
        if (names.Count != meta.NumClasses)
            throw new ConfigException($"{path}: {names.Count} class names for {meta.NumClasses} classes");
        if (pre.Channels != meta.InChannels)
            throw new ConfigException(
                $"{path}: preprocessing gives {pre.Channels} channel(s), the model takes {meta.InChannels}");
        pre.Validate(path);
        return new ModelCard(meta.Architecture, meta.Classifier, meta.Dataset, names, pre, meta.Precision, meta.Stage);
    }

    public IEnumerable<(string Key, string Value)> ToMetadata()
    {
        yield return (MetadataKeys.FormatVersion, "1");
        yield return (MetadataKeys.ClassNames, JsonSerializer.Serialize(ClassNames));
        yield return (MetadataKeys.Preprocessing, JsonSerializer.Serialize(Preprocessing, AtomicFile.Json));
        yield return (MetadataKeys.Architecture, Architecture);
        yield return (MetadataKeys.Classifier, Classifier);
        yield return (MetadataKeys.Dataset, Dataset);
        yield return (MetadataKeys.Stage, Stage);
        yield return (MetadataKeys.Input, InputDescription);
    }

    /// <summary>The card in an exported model's metadata; a model without it was not written by <c>h2t
    /// export</c>.</summary>
    public static ModelCard FromMetadata(string path, IReadOnlyDictionary<string, string> metadata)
    {
        string Need(string key) => metadata.TryGetValue(key, out var v) ? v
            : throw new DataFormatException(
                $"{path}: ONNX metadata has no '{key}': not a model written by 'h2t export --format onnx'");
        IReadOnlyList<string> names;
        ImagePreprocessing pre;
        try
        {
            names = JsonSerializer.Deserialize<string[]>(Need(MetadataKeys.ClassNames)) ??
                throw new JsonException("null");
            pre = JsonSerializer.Deserialize<ImagePreprocessing>(Need(MetadataKeys.Preprocessing),
                AtomicFile.Json) ?? throw new JsonException("null");
        }
        catch (JsonException e) { throw new DataFormatException($"{path}: ONNX metadata does not parse: {e.Message}"); }
        pre.Validate(path);
        return new ModelCard(Need(MetadataKeys.Architecture), Need(MetadataKeys.Classifier),
            metadata.GetValueOrDefault(MetadataKeys.Dataset, ""), names, pre, "fp32",
                metadata.GetValueOrDefault(MetadataKeys.Stage, ""));
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Architecture} + {Classifier} classifier, {ClassNames.Count} classes ({Dataset}), input " +
            $"{Preprocessing.Describe()}");
}
