using System.Text;
using System.Text.Json;
using H2T.Models;
using H2T.Settings;
using TorchSharp.Modules;

namespace H2T.Runs;

/// <summary>What a checkpoint says about itself, readable without loading any tensor.</summary>
public sealed record CheckpointMeta
{
    public int FormatVersion { get; init; } = Checkpoint.CurrentVersion;
    public string Stage { get; init; } = "stage1";
    /// <summary>Last completed epoch, 0-based.</summary>
    public int Epoch { get; init; }
    public int TotalEpochs { get; init; }
    public string Architecture { get; init; } = "";
    public int InChannels { get; init; }
    public int NumClasses { get; init; }
    public string Classifier { get; init; } = "linear";
    public int[] ClassCounts { get; init; } = [];
    public string Dataset { get; init; } = "";
    public double BestTop1 { get; init; }
    public int BestEpoch { get; init; } = -1;
    public int Seed { get; init; }
    /// <summary>The resolved run config as JSON (stage-specific record).</summary>
    public JsonElement? Config { get; init; }
    public JsonElement? DataConfig { get; init; }
    public bool HasOptimizer { get; init; }
    /// <summary>Stage II: the stage-I checkpoint it was trained from (full path).</summary>
    public string? From { get; init; }
    /// <summary>Set when the weights came from a PyTorch checkpoint (<c>h2t import</c>): its full path.</summary>
    public string? ImportedFrom { get; init; }
    /// <summary>The arithmetic the run computed in ("fp32" or "bf16"); the weights in the file are fp32 either
    /// way.</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>The feature-map layout the run used ("channels-last" or "NCHW"; absent before 0.2:
    /// channels-last).</summary>
    public string Layout { get; init; } = "channels-last";
    /// <summary>The class names, index order (checkpoints before 0.1.1 lack them: null).</summary>
    public string[]? ClassNames { get; init; }
    /// <summary>The evaluation transform the model expects (null in older checkpoints: derived from the data
    /// config).</summary>
    public H2T.Data.ImagePreprocessing? Preprocessing { get; init; }
    /// <summary>The factor on a cosine classifier's cosines (1: none; LIFT's 25 for the light recipe).</summary>
    public double CosineScale { get; init; } = 1.0;
    /// <summary>The tuning whose modules the saved backbone carries ("ssf", "adaptformer", ...; null: none, or
    /// merged into the weights), and their width, rank or prompt count.</summary>
    public string? Tuning { get; init; }
    public int TuningDim { get; init; }
    /// <summary>Backbone parameters that trained in the run, and all of them (elements; 0 in older files).</summary>
    public long TrainableParameters { get; init; }
    public long BackboneParameters { get; init; }
}

/// <summary>
/// One file per checkpoint: magic <c>H2TCKPT</c> + format digit, the byte length of the tensor data (format 2 on),
/// JSON metadata, then the backbone and classifier state dicts (TorchSharp format, PyTorch key names) and the
/// optimizer state. Written atomically. Every random stream is derived from (seed, epoch), so the epoch and seed are
/// the RNG state a resume needs. The length lets a reader tell a truncated file from a corrupt one before parsing.
/// </summary>
public static class Checkpoint
{
    public const int CurrentVersion = 2;
    static readonly byte[] MagicStem = "H2TCKPT"u8.ToArray();

    public static void Save(string path, CheckpointMeta meta, Backbone backbone, ClassifierHead head,
        OptimizerHelper? optimizer)
    {
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(MagicStem);
            w.Write((byte)('0' + CurrentVersion));
            long lengthAt = s.Position;
            w.Write(0L);
            w.Write(JsonSerializer.Serialize(meta with { HasOptimizer = optimizer is not null,
                FormatVersion = CurrentVersion }, AtomicFile.Json));
            long start = s.Position;
            backbone.save(w);
            head.save(w);
            optimizer?.save_state_dict(w);
            w.Flush();
            long end = s.Position;
            s.Position = lengthAt;
            w.Write(end - start);
            w.Flush();
            s.Position = end;
        });
    }

    /// <summary>Whether the file starts with this format's magic (any format digit); reads 7 bytes, loads
    /// nothing.</summary>
    public static bool HasMagic(string path)
    {
        if (!File.Exists(path)) return false;
        Span<byte> head = stackalloc byte[7];
        using var fs = File.OpenRead(path);
        return fs.ReadAtLeast(head, head.Length,
            throwOnEndOfStream: false) == head.Length && head.SequenceEqual(MagicStem);
    }

    public static CheckpointMeta ReadMeta(string path)
    {
        using var fs = OpenChecked(path);
        using var r = new BinaryReader(fs);
        return ReadHeader(path, r).Meta;
    }

    static FileStream OpenChecked(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: checkpoint not found");
        return File.OpenRead(path);
    }

    /// <summary>The metadata and, from format 2 on, the tensor bytes the header promises (checked against the
    /// file).</summary>
    static (CheckpointMeta Meta, long? TensorBytes) ReadHeader(string path, BinaryReader r)
    {
        long fileLength = r.BaseStream.Length;
        var magic = r.ReadBytes(MagicStem.Length + 1);
        if (magic.Length < MagicStem.Length + 1 || !magic.AsSpan(0, MagicStem.Length).SequenceEqual(MagicStem))
        {
            var hint = magic.Length >= 2 && magic[0] == (byte)'P' && magic[1] == (byte)'K'
                ? " (it is a zip file, as torch.save writes: bring a PyTorch checkpoint in with 'h2t import')" : "";
            throw new ConfigException(fileLength < MagicStem.Length + 1
                ? $"{path}: not an H2T.NET checkpoint: {fileLength} byte(s), shorter than the 8-byte magic " +
                    $"'H2TCKPT{CurrentVersion}' (empty or truncated)"
                : $"{path}: not an H2T.NET checkpoint (expected magic 'H2TCKPT{CurrentVersion}' at offset 0){hint}");
        }
        int version = magic[^1] - '0';
        if (version is < 1 or > CurrentVersion)
            throw new ConfigException(
                $"{path}: checkpoint format '{(char)magic[^1]}' is not one this build reads (formats 1 to " +
                $"{CurrentVersion}); " +
                "it was written by a newer H2T.NET, or the file is corrupt");
        long? tensorBytes = null;
        CheckpointMeta meta;
        try
        {
            if (version >= 2)
            {
                tensorBytes = r.ReadInt64();
                if (tensorBytes < 0) throw new ConfigException(
                    $"{path}: corrupt checkpoint header: tensor data length {tensorBytes} at offset 8");
            }
            meta = JsonSerializer.Deserialize<CheckpointMeta>(r.ReadString(), AtomicFile.Json)
                ?? throw new ConfigException($"{path}: empty checkpoint metadata");
        }
        catch (Exception e) when (e is JsonException or EndOfStreamException or FormatException)
        {
            throw new ConfigException(e is EndOfStreamException
                ? $"{path}: truncated: the file ends at byte {fileLength}, inside the checkpoint header"
                : $"{path}: corrupt checkpoint header (metadata at offset {r.BaseStream.Position}): {e.Message}");
        }
        if (tensorBytes is { } expected)
        {
            long found = fileLength - r.BaseStream.Position;
            if (found < expected)
                throw new ConfigException(
                    $"{path}: truncated: {expected} bytes of tensor data expected after the header, {found} found");
            if (found > expected)
                throw new ConfigException(
                    $"{path}: corrupt: {found - expected} unexpected byte(s) after the {expected} bytes of tensor " +
                        $"data");
        }
        return (meta, tensorBytes);
    }

    /// <summary>A checkpoint's models, built from its own metadata and loaded; the caller owns (disposes)
    /// both.</summary>
    public sealed record Models(CheckpointMeta Meta, Backbone Backbone, ClassifierHead Head) : IDisposable
    {
        public void Dispose()
        {
            Backbone.Dispose();
            Head.Dispose();
        }
    }

    /// <summary>
    /// Builds the backbone and classifier a checkpoint describes and loads them (checked against the data when
    /// <paramref name="expectedInChannels"/> / <paramref name="expectedClasses"/> are given). The backbone is built in
    /// <paramref name="precision"/> and <paramref name="layout"/> when given, else in what the checkpoint recorded:
    /// resolved here, once.
    /// </summary>
    public static Models Open(string path, int? expectedInChannels = null, int? expectedClasses = null,
        ComputePrecision? precision = null, FeatureLayout? layout = null)
    {
        var meta = ReadMeta(path);
        var compute = new BackboneCompute(precision ?? ComputeNames.Recorded(meta.Precision, path),
            layout ?? (ComputeNames.Layouts.TryParse(meta.Layout, out var recorded) ? recorded
                : throw new ConfigException(
                    $"{path}: layout '{meta.Layout}': expected {ComputeNames.Layouts.Expected}")));
        var backbone = ModelFactory.CreateBackbone(meta.Architecture, meta.InChannels, compute);
        var head = ModelFactory.CreateHead(meta.Classifier, backbone, meta.NumClasses, meta.CosineScale);
        try
        {
            if (meta.Tuning is { } tuning)
            {
                if (!TuningNames.Names.TryParse(tuning, out var kind))
                    throw new ConfigException($"{path}: tuning '{tuning}': expected {TuningNames.Names.Expected}");
                H2T.Models.Tuning.AddModules(backbone, kind, meta.TuningDim, meta.NumClasses);
            }
            Load(path, backbone, head, null, expectedInChannels, expectedClasses);
            // Opened models evaluate, predict, export or feed a frozen stage II: SSF folds into the weights there.
            backbone = H2T.Models.Tuning.Merged(backbone, () => ModelFactory.CreateBackbone(meta.Architecture,
                meta.InChannels, compute));
            return new Models(meta, backbone, head);
        }
        catch
        {
            backbone.Dispose();
            head.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads weights into modules built by the caller. Refuses a checkpoint of another architecture, input
    /// channel count or class count with a message naming both.
    /// </summary>
    public static CheckpointMeta Load(string path, Backbone backbone, ClassifierHead? head, OptimizerHelper? optimizer,
        int? expectedInChannels = null, int? expectedClasses = null)
    {
        using var fs = OpenChecked(path);
        using var r = new BinaryReader(fs);
        var (meta, tensorBytes) = ReadHeader(path, r);
        if (!string.Equals(meta.Architecture, backbone.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ConfigException(
                $"{path}: checkpoint is a {meta.Architecture} backbone, but {backbone.Architecture} was requested");
        if (expectedInChannels is { } c && c != meta.InChannels)
            throw new ConfigException(
                $"{path}: checkpoint expects {meta.InChannels} input channel(s), the data has {c}");
        if (expectedClasses is { } k && k != meta.NumClasses)
            throw new ConfigException($"{path}: checkpoint has {meta.NumClasses} classes, the data has {k}");
        try
        {
            backbone.load(r, strict: true);
            if (head is null) return meta;
            if (head.Kind != meta.Classifier)
                throw new ConfigException(
                    $"{path}: checkpoint classifier is '{meta.Classifier}', expected '{head.Kind}'");
            head.load(r, strict: true);
            if (optimizer is not null && meta.HasOptimizer) optimizer.load_state_dict(r);
        }
        catch (EndOfStreamException) when (tensorBytes is null)
        {
            throw new ConfigException(
                $"{path}: truncated: the tensor data ends at byte {r.BaseStream.Length}, before the model's tensors " +
                $"are complete");
        }
        catch (Exception e) when (e is not ConfigException and not OutOfMemoryException)
        {
            throw new ConfigException($"{path}: checkpoint tensors do not match the model ({e.Message})");
        }
        return meta;
    }
}
