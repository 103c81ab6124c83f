using System.Collections;
using System.Globalization;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Interop;

/// <summary>
/// The tensors of a PyTorch checkpoint or state dict, split into backbone and classifier by the layout of the
/// codebase that wrote it, with DataParallel's <c>module.</c> prefixes removed. The layouts recognised:
/// <list type="bullet">
/// <item>H2T and MiSLAS: <c>{epoch, state_dict_model, state_dict_classifier, best_acc1, its_ece}</c>; MiSLAS's stage II
/// adds <c>state_dict_lws_model</c> (<c>learned_norm</c>), its Places-LT model <c>state_dict_block</c> (the
/// ResNet-152's
/// last Bottleneck, our <c>layer4.2</c>).</item>
/// <item>Decouple: <c>state_dict_best</c> or <c>state_dict</c> holding <c>{feat_model, classifier}</c>.</item>
/// <item>RIDE: <c>{arch, epoch, state_dict, optimizer, monitor_best, config}</c> with <c>backbone.*</c> keys, the
/// experts'
/// classifiers as <c>backbone.linears.{e}.weight</c>.</item>
/// <item>A plain state dict (torchvision's models, or a whole model's <c>state_dict()</c>): <c>fc.*</c> or
/// <c>linear.*</c> is the classifier.</item>
/// </list>
/// </summary>
public sealed class PyTorchWeights : IDisposable
{
    public required string Layout { get; init; }
    public required Dictionary<string, Tensor> Backbone { get; init; }
    public required Dictionary<string, Tensor> Classifier { get; init; }
    /// <summary>MiSLAS's learnable weight scaling (one scale per class), when the file has it.</summary>
    public Tensor? LwsScales { get; init; }
    /// <summary>The file's <c>epoch</c> (finished epochs), when present.</summary>
    public int? Epoch { get; init; }
    /// <summary>What was read beside the weights and not used (e.g. an optimizer state), for the report.</summary>
    public List<string> Notes { get; } = [];

    public static PyTorchWeights Read(string path)
    {
        var root = TorchSaveReader.ReadDict(path);
        var all = TorchSaveReader.TensorsIn(root).ToList();
        try
        {
            var weights = Build(path, root);
            // What the file held besides the weights kept (optimizer state, a second state dict ...) is freed now.
            var kept = new HashSet<Tensor>(weights.Backbone.Values.Concat(weights.Classifier.Values),
                ReferenceEqualityComparer.Instance);
            foreach (var t in all.Where(t => !kept.Contains(t))) t.Dispose();
            return weights;
        }
        catch
        {
            foreach (var t in all) t.Dispose();
            throw;
        }
    }

    static PyTorchWeights Build(string path, System.Collections.Hashtable root)
    {
        int? epoch = root["epoch"] is int or long ? Convert.ToInt32(root["epoch"], CultureInfo.InvariantCulture) : null;

        if (root["state_dict_model"] is IDictionary model)
        {
            var backbone = Tensors(path, model, "state_dict_model");
            var classifier = root["state_dict_classifier"] is IDictionary c ? Tensors(path, c,
                "state_dict_classifier") : [];
            var w = new PyTorchWeights
            {
                Layout = "H2T / MiSLAS (state_dict_model + state_dict_classifier)", Backbone = backbone,
                    Classifier = classifier, Epoch = epoch,
                LwsScales = root["state_dict_lws_model"] is IDictionary lws ? LearnedNorm(path, Tensors(path, lws,
                    "state_dict_lws_model")) : null,
            };
            if (root["state_dict_block"] is IDictionary block)
            {
                // MiSLAS's Places-LT model cuts torchvision's ResNet-152 after layer4.1 and trains a fresh Bottleneck
                // on top:
                // the same module as layer4.2.
                foreach (var (k, t) in Tensors(path, block, "state_dict_block")) backbone["layer4.2." + k] = t;
                w.Notes.Add("state_dict_block (MiSLAS's Places-LT Bottleneck) is layer4.2 of our resnet152");
            }
            if (w.LwsScales is not null) w.Notes.Add(
                "state_dict_lws_model: MiSLAS's learned_norm becomes the LWS classifier's per-class scales");
            return w.Normalised();
        }

        var nested = root["state_dict_best"] as IDictionary ?? root["state_dict"] as IDictionary;
        if (nested?["feat_model"] is IDictionary feat)
        {
            var classifier = nested["classifier"] is IDictionary c ? Tensors(path, c, "classifier") : [];
            return new PyTorchWeights
            {
                Layout = $"Decouple ({(root.ContainsKey("state_dict_best") ? "state_dict_best" : "state_dict")}: " +
                    $"feat_model + classifier)",
                Backbone = Tensors(path, feat, "feat_model"), Classifier = classifier, Epoch = epoch,
            }.Normalised();
        }

        var flat = nested ?? root["model"] as IDictionary;
        string layout;
        Dictionary<string, Tensor> tensors;
        if (flat is not null)
        {
            tensors = Tensors(path, flat, root.ContainsKey("state_dict") ? "state_dict" : "model");
            bool ride = tensors.Keys.Any(k => k.StartsWith("backbone.", StringComparison.Ordinal));
            layout = ride ?
                $"RIDE (state_dict with backbone.*{(root["arch"] is string arch ? $", arch {arch}" : "")})" :
                "a checkpoint with a whole-model state_dict";
            if (ride) tensors = tensors.ToDictionary(kv => kv.Key.StartsWith("backbone.",
                StringComparison.Ordinal) ? kv.Key["backbone.".Length..] : kv.Key, kv => kv.Value,
                StringComparer.Ordinal);
        }
        else if (root.Values.Cast<object?>().Any(v => v is Tensor))
        {
            tensors = Tensors(path, root, "state dict");
            layout = "a plain state dict (torchvision style)";
        }
        else
            throw new ConfigException(
                $"{path}: no weights found: expected the keys of H2T/MiSLAS (state_dict_model), Decouple " +
                $"(state_dict_best), " +
                $"RIDE (state_dict) or a plain state dict; the file has " +
                    string.Join(", ", root.Keys.Cast<object>().Select(k => $"'{k}'").Order(StringComparer.Ordinal)));
        var (bb, cls) = SplitClassifier(tensors);
        var result = new PyTorchWeights { Layout = layout, Backbone = bb, Classifier = cls, Epoch = epoch };
        foreach (var key in new[] { "optimizer", "config", "criterion" })
            if (root.ContainsKey(key)) result.Notes.Add($"'{key}' is not used");
        return result.Normalised();
    }

    /// <summary>A whole model's classifier is fc.* (torchvision's ResNets, ResNet_s), linear.* or classifier.2.*
    /// (torchvision's ConvNeXt, whose classifier.0, the final LayerNorm, is our backbone's); RIDE's experts are
    /// linears.{e}.*.</summary>
    internal static (Dictionary<string, Tensor> Backbone, Dictionary<string,
        Tensor> Classifier) SplitClassifier(Dictionary<string, Tensor> all)
    {
        var backbone = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var classifier = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in all)
        {
            if (k.StartsWith("fc.", StringComparison.Ordinal) || k.StartsWith("linear.",
                StringComparison.Ordinal) || k.StartsWith("linears.", StringComparison.Ordinal)
                || k.StartsWith(ConvNeXtLinear, StringComparison.Ordinal))
                classifier[k] = t;
            else backbone[k] = t;
        }
        return (backbone, classifier);
    }

    const string ConvNeXtLinear = "classifier.2.";

    /// <summary>Classifier names in our heads' terms: ResNet_s's linear.* and ConvNeXt's classifier.2.* are
    /// fc.*.</summary>
    PyTorchWeights Normalised()
    {
        foreach (var prefix in new[] { "linear.", ConvNeXtLinear })
            foreach (var key in Classifier.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList())
            {
                Classifier["fc." + key[prefix.Length..]] = Classifier[key];
                Classifier.Remove(key);
            }
        return this;
    }

    static Tensor LearnedNorm(string path, Dictionary<string, Tensor> lws) =>
        lws.TryGetValue("learned_norm", out var t) ? t.reshape(-1).clone()
            : throw new ConfigException(
                $"{path}: state_dict_lws_model has no 'learned_norm' (it has {string.Join(", ", lws.Keys)})");

    static Dictionary<string, Tensor> Tensors(string path, IDictionary dict, string what)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var keyObject in dict.Keys.Cast<object>().OrderBy(k => k as string, StringComparer.Ordinal))
        {
            var key = keyObject as string ??
                throw new ConfigException($"{path}: {what}: a key is not a string ({keyObject})");
            if (dict[keyObject] is not Tensor t) continue; // e.g. an epoch beside a top-level state dict
            while (key.StartsWith("module.", StringComparison.Ordinal)) key = key["module.".Length..];
            result[key] = t;
        }
        return result;
    }

    public void Dispose()
    {
        foreach (var t in Backbone.Values.Concat(Classifier.Values)) t.Dispose();
        LwsScales?.Dispose();
    }
}

/// <summary>What loading a set of named tensors into a module did: counts, and every key that did not fit, by
/// name.</summary>
public sealed record StateDictReport(string What, int Loaded, IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> ShapeMismatches, int BatchCountersDefaulted)
{
    public bool Clean => Missing.Count == 0 && Unexpected.Count == 0 && ShapeMismatches.Count == 0;

    public IEnumerable<string> Lines()
    {
        yield return $"{What}: {Loaded} tensor(s) loaded" + (BatchCountersDefaulted > 0
            ? $"; {BatchCountersDefaulted} BatchNorm num_batches_tracked absent from the file (older torchvision " +
                $"files lack them), kept at 0" : "");
        if (Missing.Count > 0) yield return $"{What}: missing from the file, left as initialised: {Names(Missing)}";
        if (Unexpected.Count > 0) yield return $"{What}: in the file, not in our model: {Names(Unexpected)}";
        if (ShapeMismatches.Count > 0) yield return $"{What}: shapes disagree: {Names(ShapeMismatches)}";
    }

    internal static string Names(IReadOnlyList<string> keys, int show = 24) =>
        string.Join(", ",
            keys.Take(show).Select(k => k.StartsWith('\'') ? k : $"'{k}'")) + (keys.Count > show ?
            $" and {keys.Count - show} more" : "");
}

/// <summary>Loads named tensors (PyTorch key names) into a TorchSharp module, strictly unless told otherwise.</summary>
public static class StateDictLoader
{
    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="target"/>'s parameters and buffers by name. Refuses
    /// (before
    /// changing anything) unexpected keys and shape disagreements, and missing keys unless <paramref
    /// name="allowMissing"/>.
    /// </summary>
    public static StateDictReport Load(string path, string what, IReadOnlyDictionary<string, Tensor> source,
        nn.Module target, bool allowMissing = false)
    {
        var want = target.state_dict();
        var missing = new List<string>();
        int counters = 0;
        foreach (var k in want.Keys.Where(k => !source.ContainsKey(k)))
        {
            if (k.EndsWith("num_batches_tracked", StringComparison.Ordinal)) counters++;
            else missing.Add(k);
        }
        var unexpected = source.Keys.Where(k => !want.ContainsKey(k)).ToList();
        var shapes = want.Where(kv => source.TryGetValue(kv.Key, out var s) && !s.shape.SequenceEqual(kv.Value.shape))
            .Select(kv =>
                $"'{kv.Key}' is [{string.Join(", ", source[kv.Key].shape)}] in the file, " +
                $"[{string.Join(", ", kv.Value.shape)}] in our model").ToList();
        var report = new StateDictReport(what, want.Count(kv => source.ContainsKey(kv.Key)), missing, unexpected,
            shapes, counters);
        if (unexpected.Count > 0 || shapes.Count > 0 || (missing.Count > 0 && !allowMissing))
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing {StateDictReport.Names(missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected {StateDictReport.Names(unexpected)}");
            if (shapes.Count > 0) parts.Add($"shapes disagree: {StateDictReport.Names(shapes)}");
            var hint = shapes.Any(s => s.StartsWith("'fc.",
                StringComparison.Ordinal)) ? " (the class count differs from the dataset's?)" :
                " (is the backbone right?)";
            throw new ConfigException(
                $"{path}: {what} does not match our {Describe(target)}: {string.Join("; ", parts)}{hint}" +
                (missing.Count > 0 && unexpected.Count == 0 && shapes.Count == 0 ?
                    "; --allow-missing keeps the missing ones as initialised" : ""));
        }
        using (no_grad())
            foreach (var (key, dst) in want)
                if (source.TryGetValue(key, out var src)) dst.copy_(src);
        return report;
    }

    static string Describe(nn.Module m) => m is Models.Backbone b ? b.Architecture : m.GetName();
}
