using System.Collections;
using System.Text.Json;
using H2T.Data;
using H2T.Models;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// Moves checkpoints between H2T.NET and PyTorch. Reads what the reference implementation saves with
/// <c>torch.save</c> (a dict with <c>state_dict_model</c> and <c>state_dict_classifier</c>; a plain state dict, or one
/// under <c>state_dict</c>, also works), strips DataParallel's <c>module.</c> prefixes, and checks every tensor name and
/// shape against our model before anything is written. Writes ours back in the same layout, loadable with
/// <c>torch.load</c> into the reference's ResNet feature extractor + classifier.
/// </summary>
public static class PyTorchCheckpoint
{
    /// <summary>torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle stream.</summary>
    public static bool LooksLikePyTorch(string path)
    {
        if (!File.Exists(path)) return false;
        using var fs = File.OpenRead(path);
        Span<byte> head = stackalloc byte[4];
        int n = fs.Read(head);
        return n >= 2 && ((head[0] == (byte)'P' && head[1] == (byte)'K') || head[0] == 0x80);
    }

    /// <summary>The tensors of a PyTorch checkpoint, split into backbone and classifier, prefixes removed.</summary>
    public sealed class Contents : IDisposable
    {
        public required Dictionary<string, Tensor> Backbone { get; init; }
        public required Dictionary<string, Tensor> Classifier { get; init; }
        /// <summary>The reference's 'epoch' (the number of finished epochs), when present.</summary>
        public int? Epoch { get; init; }

        public void Dispose()
        {
            foreach (var t in Backbone.Values.Concat(Classifier.Values)) t.Dispose();
        }
    }

    public static Contents Read(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: checkpoint not found");
        using var fs = File.OpenRead(path);
        Span<byte> head = stackalloc byte[2];
        if (fs.Read(head) < 2 || head[0] != (byte)'P' || head[1] != (byte)'K')
            throw new ConfigException($"{path}: not a zip-format PyTorch checkpoint (PyTorch >= 1.6 writes these by default; " +
                "re-save a legacy file with torch.save(obj, f, _use_new_zipfile_serialization=True))");
        fs.Position = 0;
        Hashtable root;
        try { root = PyTorchUnpickler.UnpickleStateDict(fs, leaveOpen: true); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ConfigException($"{path}: cannot read the PyTorch checkpoint ({e.GetType().Name}: {e.Message})");
        }

        IDictionary model = Find(root, "state_dict_model", "state_dict", "model") ?? root;
        var backbone = Tensors(path, model, "state_dict_model");
        var classifier = Find(root, "state_dict_classifier", "classifier") is { } c ? Tensors(path, c, "state_dict_classifier") : new Dictionary<string, Tensor>();
        // A whole-model state dict (ResNet_s) keeps its classifier as 'linear.*' or 'fc.*' beside the backbone.
        foreach (var key in backbone.Keys.Where(k => k.StartsWith("linear.", StringComparison.Ordinal) || k.StartsWith("fc.", StringComparison.Ordinal)).ToList())
        {
            classifier["fc." + key[(key.IndexOf('.') + 1)..]] = backbone[key];
            backbone.Remove(key);
        }
        foreach (var key in classifier.Keys.Where(k => k.StartsWith("linear.", StringComparison.Ordinal)).ToList())
        {
            classifier["fc." + key["linear.".Length..]] = classifier[key];
            classifier.Remove(key);
        }
        int? epoch = root.ContainsKey("epoch") && root["epoch"] is int or long ? Convert.ToInt32(root["epoch"], System.Globalization.CultureInfo.InvariantCulture) : null;
        if (backbone.Count == 0) throw new ConfigException($"{path}: no backbone tensors found (expected a 'state_dict_model' dict or a state dict)");
        return new Contents { Backbone = backbone, Classifier = classifier, Epoch = epoch };
    }

    static IDictionary? Find(Hashtable root, params string[] keys)
    {
        foreach (var k in keys)
            if (root.ContainsKey(k) && root[k] is IDictionary d) return d;
        return null;
    }

    static Dictionary<string, Tensor> Tensors(string path, IDictionary dict, string what)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in dict)
        {
            var key = e.Key as string ?? throw new ConfigException($"{path}: {what}: a key is not a string ({e.Key})");
            if (e.Value is not Tensor t) continue; // e.g. the epoch beside a top-level state dict
            if (key.StartsWith("module.", StringComparison.Ordinal)) key = key["module.".Length..];
            result[key] = t;
        }
        return result;
    }

    /// <summary>
    /// Builds our backbone + classifier for <paramref name="splits"/>, loads the PyTorch tensors into them (names and
    /// shapes checked) and writes an H2T.NET stage-I checkpoint that <c>stage2</c>, <c>sweep</c> and <c>eval</c> read.
    /// </summary>
    public static CheckpointMeta Import(string pytorchPath, string outPath, string backboneName, string classifierKind,
        DatasetSplits splits, DataConfig data)
    {
        using var contents = Read(pytorchPath);
        int inChannels = splits.Train.Shape.Channels;
        using var backbone = ModelFactory.CreateBackbone(backboneName, inChannels);
        using var head = ModelFactory.CreateHead(classifierKind, backbone, splits.NumClasses);
        Copy(pytorchPath, "state_dict_model", contents.Backbone, backbone);
        if (contents.Classifier.Count == 0)
            throw new ConfigException($"{pytorchPath}: no classifier tensors (expected 'state_dict_classifier' with fc.weight / fc.bias)");
        Copy(pytorchPath, "state_dict_classifier", contents.Classifier, head);
        var epochs = contents.Epoch ?? 0;
        var meta = new CheckpointMeta
        {
            Stage = "stage1", Epoch = Math.Max(0, epochs - 1), TotalEpochs = epochs, Architecture = backbone.Architecture,
            InChannels = inChannels, NumClasses = splits.NumClasses, Classifier = head.Kind, ClassCounts = splits.TrainClassCounts,
            Dataset = splits.Name, DataConfig = JsonSerializer.SerializeToElement(data, AtomicFile.Json), ImportedFrom = Path.GetFullPath(pytorchPath),
        };
        Checkpoint.Save(outPath, meta, backbone, head, null);
        return meta;
    }

    static void Copy(string path, string what, Dictionary<string, Tensor> source, nn.Module target)
    {
        var want = target.state_dict();
        var missing = want.Keys.Where(k => !source.ContainsKey(k) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        var extra = source.Keys.Where(k => !want.ContainsKey(k)).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new ConfigException($"{path}: {what} does not match our {(target is Backbone b ? b.Architecture : target.GetName())}: " +
                (missing.Count > 0 ? $"missing {Few(missing)}" : "") + (missing.Count > 0 && extra.Count > 0 ? "; " : "") +
                (extra.Count > 0 ? $"unexpected {Few(extra)}" : "") + " (is the backbone or the class count right?)");
        foreach (var (key, dst) in want)
        {
            if (!source.TryGetValue(key, out var src)) continue;
            if (!src.shape.SequenceEqual(dst.shape))
                throw new ConfigException($"{path}: {what}: '{key}' has shape [{string.Join(", ", src.shape)}], our model expects [{string.Join(", ", dst.shape)}]" +
                    (key.StartsWith("fc.", StringComparison.Ordinal) ? " (the class count differs from the dataset's)" : ""));
            using (no_grad()) dst.copy_(src);
        }
    }

    static string Few(List<string> keys) =>
        string.Join(", ", keys.Take(4).Select(k => $"'{k}'")) + (keys.Count > 4 ? $" and {keys.Count - 4} more" : "");

    /// <summary>
    /// Writes an H2T.NET checkpoint as a <c>torch.save</c>-compatible dict: <c>state_dict_model</c> (backbone),
    /// <c>state_dict_classifier</c>, <c>epoch</c>, <c>best_acc1</c> and <c>h2t_meta</c> (our metadata as JSON).
    /// </summary>
    public static void Export(string checkpointPath, string outPath)
    {
        using var models = Checkpoint.Open(checkpointPath);
        var (meta, backbone, head) = models;
        var table = new Hashtable
        {
            ["epoch"] = meta.Epoch + 1,
            ["best_acc1"] = meta.BestTop1,
            ["state_dict_model"] = backbone.state_dict(),
            ["state_dict_classifier"] = head.state_dict(),
            ["h2t_meta"] = JsonSerializer.Serialize(meta, AtomicFile.Json),
        };
        AtomicFile.Write(outPath, s => PyTorchPickler.PickleStateDict(s, table, leaveOpen: true));
    }
}
