using System.Text;
using System.Text.Json;
using H2T.Models;
using TorchSharp;
using TorchSharp.Modules;

namespace H2T.Training;

/// <summary>What a checkpoint says about itself, readable without loading any tensor.</summary>
public sealed record CheckpointMeta
{
    public int FormatVersion { get; init; } = 1;
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
}

/// <summary>
/// One file per checkpoint: magic, JSON metadata, backbone and classifier state dicts (TorchSharp format, PyTorch
/// key names), optimizer state. Written atomically. Every random stream is derived from (seed, epoch), so the
/// epoch and seed are the RNG state a resume needs.
/// </summary>
public static class Checkpoint
{
    static readonly byte[] Magic = "H2TCKPT1"u8.ToArray();

    public static void Save(string path, CheckpointMeta meta, Backbone backbone, ClassifierHead head, OptimizerHelper? optimizer)
    {
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            w.Write(JsonSerializer.Serialize(meta with { HasOptimizer = optimizer is not null }, AtomicFile.Json));
            backbone.save(w);
            head.save(w);
            optimizer?.save_state_dict(w);
        });
    }

    public static CheckpointMeta ReadMeta(string path)
    {
        using var fs = OpenChecked(path);
        using var r = new BinaryReader(fs);
        return ReadHeader(path, r);
    }

    static FileStream OpenChecked(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: checkpoint not found");
        return File.OpenRead(path);
    }

    static CheckpointMeta ReadHeader(string path, BinaryReader r)
    {
        var magic = r.ReadBytes(Magic.Length);
        if (!magic.SequenceEqual(Magic))
            throw new ConfigException($"{path}: not an H2T.NET checkpoint (expected magic 'H2TCKPT1' at offset 0)");
        try
        {
            return JsonSerializer.Deserialize<CheckpointMeta>(r.ReadString(), AtomicFile.Json)
                ?? throw new ConfigException($"{path}: empty checkpoint metadata");
        }
        catch (Exception e) when (e is JsonException or EndOfStreamException)
        {
            throw new ConfigException($"{path}: corrupt checkpoint metadata at offset {Magic.Length}: {e.Message}");
        }
    }

    /// <summary>A checkpoint's models, built from its own metadata and loaded; the caller owns (disposes) both.</summary>
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
    /// <paramref name="expectedInChannels"/> / <paramref name="expectedClasses"/> are given).
    /// </summary>
    public static Models Open(string path, int? expectedInChannels = null, int? expectedClasses = null)
    {
        var meta = ReadMeta(path);
        var backbone = ModelFactory.CreateBackbone(meta.Architecture, meta.InChannels);
        var head = ModelFactory.CreateHead(meta.Classifier, backbone, meta.NumClasses);
        try
        {
            Load(path, backbone, head, null, expectedInChannels, expectedClasses);
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
        var meta = ReadHeader(path, r);
        if (!string.Equals(meta.Architecture, backbone.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ConfigException($"{path}: checkpoint is a {meta.Architecture} backbone, but {backbone.Architecture} was requested");
        if (expectedInChannels is { } c && c != meta.InChannels)
            throw new ConfigException($"{path}: checkpoint expects {meta.InChannels} input channel(s), the data has {c}");
        if (expectedClasses is { } k && k != meta.NumClasses)
            throw new ConfigException($"{path}: checkpoint has {meta.NumClasses} classes, the data has {k}");
        try
        {
            backbone.load(r, strict: true);
            if (head is null) return meta;
            if (head.Kind != meta.Classifier)
                throw new ConfigException($"{path}: checkpoint classifier is '{meta.Classifier}', expected '{head.Kind}'");
            head.load(r, strict: true);
            if (optimizer is not null && meta.HasOptimizer) optimizer.load_state_dict(r);
        }
        catch (Exception e) when (e is not ConfigException and not OutOfMemoryException)
        {
            throw new ConfigException($"{path}: checkpoint tensors do not match the model ({e.Message})");
        }
        return meta;
    }
}
