using System.Text.RegularExpressions;
using H2T.Data;
using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Interop;

/// <summary>Whose names a ViT weight file uses.</summary>
public enum VitLayout
{
    /// <summary>torchvision 0.14's VisionTransformer state dict (ours).</summary>
    Torchvision,
    /// <summary>timm's VisionTransformer (the hub's model.safetensors).</summary>
    Timm,
    /// <summary>OpenCLIP's CLIP model (<c>visual.*</c>; its text tower is not used).</summary>
    OpenClip,
}

/// <summary>
/// Vision Transformer weights from torchvision, timm and OpenCLIP mapped strictly onto <see cref="VisionTransformer"/>:
/// every backbone tensor of the file is used and every one of ours is in the file with its shape, else the error names
/// the file's key. Position embeddings of another patch grid are resampled to the model's (torchvision's way for its
/// files, timm's for timm's and OpenCLIP's). Not part of the backbone, and so not used: torchvision's <c>heads</c>,
/// timm's <c>head</c> (the classifier; for the CLIP towers CLIP's projection), OpenCLIP's <c>visual.proj</c> (the
/// projection into the joint space) and its text tower.
/// </summary>
public static class VisionTransformerWeights
{
    /// <summary>OpenAI CLIP's input normalisation (OpenCLIP and timm use it for every CLIP tower).</summary>
    public static Normalization Clip { get; } = new([0.48145466f, 0.4578275f, 0.40821073f],
        [0.26862954f, 0.26130258f, 0.27577711f]);

    /// <summary>timm's default for its ViTs without their own (the augreg and original in21k weights): 0.5 /
    /// 0.5.</summary>
    public static Normalization Inception { get; } = new([0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);

    // (the file's name, ours) per layout; {i} is a layer index. Order matters: the first match renames.
    static readonly (string File, string Ours)[] TimmNames =
    [
        ("cls_token", "class_token"), ("reg_token", "reg_token"), ("pos_embed", "encoder.pos_embedding"),
        ("patch_embed.proj.", "conv_proj."), ("norm_pre.", "encoder.ln_pre."),
        ("blocks.{i}.norm1.", "encoder.layers.encoder_layer_{i}.ln_1."),
        ("blocks.{i}.attn.qkv.weight", "encoder.layers.encoder_layer_{i}.self_attention.in_proj_weight"),
        ("blocks.{i}.attn.qkv.bias", "encoder.layers.encoder_layer_{i}.self_attention.in_proj_bias"),
        ("blocks.{i}.attn.proj.", "encoder.layers.encoder_layer_{i}.self_attention.out_proj."),
        ("blocks.{i}.ls1.", "encoder.layers.encoder_layer_{i}.ls_1."),
        ("blocks.{i}.norm2.", "encoder.layers.encoder_layer_{i}.ln_2."),
        ("blocks.{i}.mlp.fc1.", "encoder.layers.encoder_layer_{i}.mlp.0."),
        ("blocks.{i}.mlp.fc2.", "encoder.layers.encoder_layer_{i}.mlp.3."),
        ("blocks.{i}.ls2.", "encoder.layers.encoder_layer_{i}.ls_2."),
        ("norm.", "encoder.ln."),
    ];

    static readonly (string File, string Ours)[] OpenClipNames =
    [
        ("visual.class_embedding", "class_token"), ("visual.positional_embedding", "encoder.pos_embedding"),
        ("visual.conv1.", "conv_proj."), ("visual.ln_pre.", "encoder.ln_pre."),
        ("visual.transformer.resblocks.{i}.ln_1.", "encoder.layers.encoder_layer_{i}.ln_1."),
        ("visual.transformer.resblocks.{i}.attn.", "encoder.layers.encoder_layer_{i}.self_attention."),
        ("visual.transformer.resblocks.{i}.ls_1.", "encoder.layers.encoder_layer_{i}.ls_1."),
        ("visual.transformer.resblocks.{i}.ln_2.", "encoder.layers.encoder_layer_{i}.ln_2."),
        ("visual.transformer.resblocks.{i}.mlp.c_fc.", "encoder.layers.encoder_layer_{i}.mlp.0."),
        ("visual.transformer.resblocks.{i}.mlp.c_proj.", "encoder.layers.encoder_layer_{i}.mlp.3."),
        ("visual.transformer.resblocks.{i}.ls_2.", "encoder.layers.encoder_layer_{i}.ls_2."),
        ("visual.ln_post.", "encoder.ln."),
    ];

    // torchvision before 0.13 (MLPBlock version 1) named the MLP's layers linear_1 / linear_2.
    static readonly (string File, string Ours)[] TorchvisionNames =
    [
        ("encoder.layers.encoder_layer_{i}.mlp.linear_1.", "encoder.layers.encoder_layer_{i}.mlp.0."),
        ("encoder.layers.encoder_layer_{i}.mlp.linear_2.", "encoder.layers.encoder_layer_{i}.mlp.3."),
    ];

    /// <summary>The layout of a set of tensors (OpenCLIP's <c>module.</c> and <c>visual.</c> prefixes allowed), or null
    /// when it is not a ViT.</summary>
    public static VitLayout? Detect(IEnumerable<string> keys)
    {
        var set = keys.ToHashSet(StringComparer.Ordinal);
        if (set.Contains("conv_proj.weight") && set.Contains("encoder.pos_embedding")) return VitLayout.Torchvision;
        if (set.Contains("patch_embed.proj.weight") && set.Contains("pos_embed")) return VitLayout.Timm;
        if (set.Contains("visual.conv1.weight") && set.Contains("visual.positional_embedding"))
            return VitLayout.OpenClip;
        return null;
    }

    /// <summary>The normalisation weights of this layout were trained with: CLIP's for OpenCLIP and timm's CLIP towers
    /// (those with norm_pre), ImageNet's otherwise.</summary>
    public static Normalization NormalizationOf(VitLayout layout, IEnumerable<string> keys) =>
        layout == VitLayout.OpenClip || (layout == VitLayout.Timm && keys.Contains("norm_pre.weight")) ? Clip
            : Normalization.ImageNet;

    /// <summary>
    /// The architecture a file's tensors make. Heads, LayerNorm eps and the activation are not in a file: heads come
    /// from the usual head width 64, eps from the layout (CLIP's 1e-5 with ln_pre, else 1e-6), QuickGELU when
    /// <paramref name="given"/> says openai or quickgelu.
    /// </summary>
    public static VisionTransformerConfig InferConfig(string path, IReadOnlyDictionary<string, Tensor> ours,
        VitLayout layout, string given)
    {
        ArgumentNullException.ThrowIfNull(ours);
        ArgumentNullException.ThrowIfNull(given);
        var conv = Need(path, ours, "conv_proj.weight", layout);
        var pos = Need(path, ours, "encoder.pos_embedding", layout);
        int width = (int)conv.shape[0], patch = (int)conv.shape[2];
        int depth = 0;
        while (ours.ContainsKey($"encoder.layers.encoder_layer_{depth}.ln_1.weight")) depth++;
        if (depth == 0) throw new ConfigException($"{path}: a {layout} ViT without layers (no {FileName(layout,
            "encoder.layers.encoder_layer_0.ln_1.weight")})");
        int mlp = (int)Need(path, ours, "encoder.layers.encoder_layer_0.mlp.0.weight", layout).shape[0];
        int registers = ours.TryGetValue("reg_token", out var r) ? (int)r.shape[1] : 0;
        long rows = pos.shape[1];
        bool noEmbedClass = IsSquare(rows) && !IsSquare(rows - 1);
        long cells = noEmbedClass ? rows : rows - 1;
        if (!IsSquare(cells))
            throw new ConfigException(
                $"{path}: '{FileName(layout, "encoder.pos_embedding")}' has {rows} rows: not a square patch grid " +
                $"(plus the class token)");
        int grid = (int)Math.Round(Math.Sqrt(cells));
        bool preNorm = ours.ContainsKey("encoder.ln_pre.weight");
        bool quick = given.Contains("openai", StringComparison.OrdinalIgnoreCase) ||
            given.Contains("quickgelu", StringComparison.OrdinalIgnoreCase);
        double? layerScale = ours.ContainsKey("encoder.layers.encoder_layer_0.ls_1.gamma") ? 1e-5 : null;
        return new VisionTransformerConfig(patch, grid * patch, width, depth, width % 64 == 0 ? width / 64 : 1, mlp,
            preNorm, quick ? VitActivation.QuickGelu : VitActivation.Gelu, layerScale, registers,
            preNorm || layout == VitLayout.OpenClip ? 1e-5 : 1e-6, noEmbedClass, ours.ContainsKey("conv_proj.bias"));
    }

    /// <summary>The registered ViT whose tensors <paramref name="config"/> has, preferring one of the same
    /// activation, or null.</summary>
    public static string? ArchitectureFor(VisionTransformerConfig config) =>
        VisionTransformer.Configs.Where(kv => kv.Value.SameTensors(config))
            .OrderBy(kv => kv.Value.Activation == config.Activation ? 0 : 1).Select(kv => kv.Key).FirstOrDefault();

    /// <summary>Reads a safetensors or torch.save file's tensors (OpenCLIP's state_dict wrapper and module. prefixes
    /// removed). The caller disposes them.</summary>
    public static Dictionary<string, Tensor> ReadTensors(string path)
    {
        if (SafeTensors.LooksLikeSafeTensors(path)) return SafeTensors.Read(path).Tensors;
        using var weights = PyTorchWeights.Read(path);
        var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in weights.Backbone.Concat(weights.Classifier)) all[k] = t.alias();
        return all;
    }

    /// <summary>
    /// The file's tensors under our names: (ours, the file's key, tensor) for the backbone, and the file's keys not
    /// used (classifier, projection, text tower). Tensors the file spells otherwise (OpenCLIP's class embedding [C],
    /// positions [L, C]) are reshaped to ours. Unknown keys stay under their own names, so the strict load names
    /// them.
    /// </summary>
    public static (Dictionary<string, (string File, Tensor Tensor)> Backbone, List<string> Unused) Map(
        IReadOnlyDictionary<string, Tensor> file, VitLayout layout)
    {
        ArgumentNullException.ThrowIfNull(file);
        var backbone = new Dictionary<string, (string, Tensor)>(StringComparer.Ordinal);
        var unused = new List<string>();
        foreach (var (key, t) in file.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            bool classifier = layout switch
            {
                VitLayout.Torchvision => key.StartsWith("heads.", StringComparison.Ordinal),
                VitLayout.Timm => key.StartsWith("head.", StringComparison.Ordinal),
                _ => key == "visual.proj" || !key.StartsWith("visual.", StringComparison.Ordinal),
            };
            if (classifier) { unused.Add(key); continue; }
            var ours = Rename(key, layout == VitLayout.Timm ? TimmNames
                : layout == VitLayout.OpenClip ? OpenClipNames : TorchvisionNames, toOurs: true) ?? key;
            var tensor = t;
            if (layout == VitLayout.OpenClip && ours == "class_token" && t.dim() == 1) tensor = t.reshape(1, 1, -1);
            if (layout == VitLayout.OpenClip && ours == "encoder.pos_embedding" && t.dim() == 2)
                tensor = t.unsqueeze(0);
            backbone[ours] = (key, tensor);
        }
        return (backbone, unused);
    }

    /// <summary>Loads a resolved source into <paramref name="vit"/>: read, map, resample the position grid, check every
    /// tensor, copy. Returns the lines that say what was done.</summary>
    public static List<string> Load(PretrainedSource source, VisionTransformer vit, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(vit);
        var file = ReadTensors(source.Path);
        try
        {
            return Load(source.Path, source.Given, file, vit, numClasses);
        }
        finally
        {
            foreach (var t in file.Values) t.Dispose();
        }
    }

    /// <summary>Loads named tensors (<paramref name="path"/> and <paramref name="given"/> for messages and the
    /// activation hint) into <paramref name="vit"/>.</summary>
    public static List<string> Load(string path, string given, IReadOnlyDictionary<string, Tensor> file,
        VisionTransformer vit, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(vit);
        using var scope = NewDisposeScope();
        var layout = Detect(file.Keys) ?? throw new ConfigException(
            $"{path}: not a Vision Transformer of torchvision (conv_proj.weight, encoder.pos_embedding), timm " +
            $"(patch_embed.proj.weight, pos_embed) or OpenCLIP (visual.conv1.weight, visual.positional_embedding)");
        var (mapped, unused) = Map(file, layout);
        var tensors = mapped.ToDictionary(kv => kv.Key, kv => kv.Value.Tensor, StringComparer.Ordinal);
        var inferred = InferConfig(path, tensors, layout, given);
        var lines = new List<string> { $"pretrained: {path} ({layout} ViT layout)" };
        if (!inferred.SameTensors(vit.Config))
        {
            var fits = ArchitectureFor(inferred);
            throw new ConfigException(
                $"{path}: a {layout} ViT of patch {inferred.Patch}, width {inferred.Width}, depth {inferred.Depth}, " +
                $"MLP {inferred.MlpDim}{Options(inferred)}; the backbone {vit.Architecture} has patch " +
                $"{vit.Config.Patch}, width {vit.Config.Width}, depth {vit.Config.Depth}, MLP {vit.Config.MlpDim}" +
                $"{Options(vit.Config)}" + (fits is null ? "" : $": pass --backbone {fits}"));
        }
        if (inferred.Activation != vit.Config.Activation)
            lines.Add($"pretrained: note: {given} suggests {inferred.Activation}; {vit.Architecture} uses " +
                $"{vit.Config.Activation}");
        if (Math.Abs(inferred.Eps - vit.Config.Eps) > 1e-12)
            lines.Add($"pretrained: note: {layout} LayerNorms of this kind use eps {inferred.Eps:0e0}; " +
                $"{vit.Architecture} uses {vit.Config.Eps:0e0}");

        var pos = tensors["encoder.pos_embedding"];
        int prefix = inferred.NoEmbedClass ? 0 : 1;
        if (inferred.Grid != vit.Config.Grid)
        {
            var style = layout == VitLayout.Torchvision ? PositionResampling.Torchvision : PositionResampling.Timm;
            tensors["encoder.pos_embedding"] = VisionTransformer.ResamplePositions(pos, prefix,
                (inferred.Grid, inferred.Grid), (vit.Config.Grid, vit.Config.Grid), style);
            lines.Add($"pretrained: position embeddings resampled from a {inferred.Grid}x{inferred.Grid} to a " +
                $"{vit.Config.Grid}x{vit.Config.Grid} patch grid (bicubic, {style}'s way)");
        }

        var want = vit.state_dict();
        foreach (var (key, (fileKey, _)) in mapped)
        {
            if (!want.TryGetValue(key, out var dst))
                throw new ConfigException(
                    $"{path}: '{fileKey}' is not a tensor of our {vit.Architecture} ({layout} layout)");
            var src = tensors[key];
            if (!src.shape.SequenceEqual(dst.shape))
                throw new ConfigException(
                    $"{path}: '{fileKey}' is [{string.Join(", ", src.shape)}], {vit.Architecture} expects " +
                    $"[{string.Join(", ", dst.shape)}] for '{key}'");
        }
        var missing = want.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new ConfigException(
                $"{path}: missing {string.Join(", ", missing.Take(12).Select(k => $"'{FileName(layout, k)}'"))}" +
                (missing.Count > 12 ? $" and {missing.Count - 12} more" : "") +
                $" ({layout} layout; our {string.Join(", ", missing.Take(3).Select(k => $"'{k}'"))})");
        lines.AddRange(StateDictLoader.Load(path, "pretrained backbone", tensors, vit).Lines());
        if (layout == VitLayout.OpenClip)
        {
            var text = unused.Count(k => k != "visual.proj");
            lines.Add("pretrained: not part of the backbone, not used: " +
                (unused.Contains("visual.proj") ? "'visual.proj' (CLIP's projection)" : "no projection") +
                (text > 0 ? $" and {text} tensor(s) of the text tower" : ""));
        }
        else if (unused.Count > 0)
            lines.Add($"pretrained: not part of the backbone, not used: {StateDictReport.Names(unused, 6)}" +
                (inferred.PreNorm ? " (timm's head: CLIP's projection)" : " (the file's classifier)"));
        lines.Add($"pretrained: the classifier is initialised afresh for {numClasses} classes");
        return lines;
    }

    static string Options(VisionTransformerConfig c)
    {
        var o = new List<string>();
        if (c.PreNorm) o.Add("ln_pre");
        if (c.LayerScale is not null) o.Add("layer scale");
        if (c.RegisterTokens > 0) o.Add($"{c.RegisterTokens} registers");
        if (c.NoEmbedClass) o.Add("no class position");
        if (!c.PatchBias) o.Add("no patch bias");
        return o.Count == 0 ? "" : ", " + string.Join(", ", o);
    }

    static bool IsSquare(long n) => n > 0 && (long)Math.Round(Math.Sqrt(n)) is var s && s * s == n;

    static Tensor Need(string path, IReadOnlyDictionary<string, Tensor> ours, string key, VitLayout layout) =>
        ours.TryGetValue(key, out var t) ? t
            : throw new ConfigException($"{path}: missing '{FileName(layout, key)}' ({layout} layout; our '{key}')");

    /// <summary>Our key in the layout's spelling.</summary>
    public static string FileName(VitLayout layout, string ours) => layout switch
    {
        VitLayout.Timm => Rename(ours, TimmNames, toOurs: false) ?? ours,
        VitLayout.OpenClip => Rename(ours, OpenClipNames, toOurs: false) ?? ours,
        _ => ours,
    };

    static string? Rename(string key, (string File, string Ours)[] table, bool toOurs)
    {
        foreach (var (file, ours) in table)
        {
            var (from, to) = toOurs ? (file, ours) : (ours, file);
            var pattern = "^" + Regex.Escape(from).Replace(@"\{i}", @"(\d+)", StringComparison.Ordinal);
            var m = Regex.Match(key, pattern);
            if (!m.Success) continue;
            var head = m.Groups.Count > 1 ? to.Replace("{i}", m.Groups[1].Value, StringComparison.Ordinal) : to;
            return head + key[m.Length..];
        }
        return null;
    }
}
