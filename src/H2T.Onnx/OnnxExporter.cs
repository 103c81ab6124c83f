using Google.Protobuf;
using H2T.Runs;
using H2T.Models;
using Onnx;
using static H2T.Onnx.OnnxGraph;
using static TorchSharp.torch;

namespace H2T.Onnx;

/// <summary>What an export wrote.</summary>
public sealed record OnnxExportResult(string Path, long Bytes, int Nodes, int Initializers, string Input,
    IReadOnlyList<string> Outputs);

/// <summary>
/// A checkpoint as an ONNX model (opset 17, IR 8): input <c>image</c>, float32 N x C x H x W, RGB (or grey) in [0, 1]
/// after the checkpoint's resize / crop; normalisation, the backbone with every BatchNorm folded into the convolution
/// before it (ResLT's branch BatchNorms become per-channel affine maps), global pooling and the classifier exactly as
/// evaluation computes it (cosine, LWS scales folded into the weights, tau-normalised weights, RIDE's expert mean,
/// ResLT's branch sum); a ConvNeXt's trunk ends in its final LayerNorm of the pooled map, as torchvision computes it
/// (LayerNormalization is in opset 17; GELU, not until opset 20, is written in its exact erf form); a Vision
/// Transformer's trunk ends in its class token after the final LayerNorm (attention as MatMul / Softmax per head, the
/// position embeddings at the export's image size). Outputs <c>logits</c> and <c>probabilities</c> (softmax). The
/// batch dimension is symbolic.
/// Class names and preprocessing are in the metadata (<see cref="ModelCard.MetadataKeys"/>). Always fp32.
/// </summary>
public static class OnnxExporter
{
    public const int Opset = 17;
    public const long IrVersion = 8; // what opset 17 pairs with (onnx 1.12 reads it)
    const double BnEps = 1e-5;       // every BatchNorm2d here is built with PyTorch's default eps

    public static OnnxExportResult Export(string checkpointPath, string outPath)
    {
        var card = ModelCard.FromCheckpoint(checkpointPath);
        using var models = Checkpoint.Open(checkpointPath);
        return Export(models.Backbone, models.Head, card, outPath);
    }

    public static OnnxExportResult Export(Backbone backbone, ClassifierHead head, ModelCard card, string outPath)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(head);
        ArgumentNullException.ThrowIfNull(card);
        var p = card.Preprocessing;
        var weights = new Weights(backbone, head);
        var g = new OnnxGraph();
        using (no_grad())
        {
            var x = g.Node("Sub", ["image", g.Floats("mean", p.Mean, 1, p.Channels, 1, 1)]);
            x = g.Node("Div", [x, g.Floats("std", p.Std, 1, p.Channels, 1, 1)]);
            // N x C features, one per expert: a CNN's maps globally pooled, a ViT's class token as it is (its
            // backbone's N x C x 1 x 1 map pools to itself).
            var pooled = backbone switch
            {
                RideResNetCifar => Pool(g, RideMaps(g, weights, x, backbone.Experts)),
                ResLtResNetCifar => Pool(g, ResLtMaps(g, weights, CifarTrunk(g, weights, x))),
                ResNetCifar => Pool(g, CifarTrunk(g, weights, x)),
                ResNetImageNet => Pool(g, ImageNetTrunk(g, weights, x)),
                ConvNeXt => Pool(g, ConvNeXtTrunk(g, weights, x)),
                VisionTransformer vit => [VitTrunk(g, weights, vit, x, p.Height, p.Width)],
                _ => throw new NotSupportedException($"ONNX export does not know the {backbone.Architecture} backbone"),
            };
            Head(g, weights, head, pooled);
        }
        g.NameLastOutput("logits");
        g.Node("Softmax", ["logits"], Int("axis", 1));
        g.NameLastOutput("probabilities");

        var graph = g.Proto;
        graph.DocString =
            $"H2T.NET {card.Architecture} + {card.Classifier} classifier; input: {ModelCard.InputDescription}";
        graph.Input.Add(BatchedFloat("image", ModelCard.InputDescription, p.Channels, p.Height, p.Width));
        graph.Output.Add(BatchedFloat("logits", "classifier logits, one per class", card.ClassNames.Count));
        graph.Output.Add(BatchedFloat("probabilities", "softmax of the logits", card.ClassNames.Count));
        var model = new ModelProto
        {
            IrVersion = IrVersion, ProducerName = "H2T.NET", ProducerVersion = ModelCard.LibraryVersion,
            Domain = "net.h2t", ModelVersion = 1, DocString = graph.DocString, Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (k, v) in card.ToMetadata()) model.MetadataProps.Add(new StringStringEntryProto { Key = k,
            Value = v });
        AtomicFile.Write(outPath, s => model.WriteTo(s));
        return new OnnxExportResult(Path.GetFullPath(outPath), new FileInfo(outPath).Length, graph.Node.Count,
            graph.Initializer.Count, "image", ["logits", "probabilities"]);
    }

    /// <summary>The modules' tensors by state-dict name, as float32 arrays.</summary>
    sealed class Weights(Backbone backbone, ClassifierHead head)
    {
        readonly Dictionary<string, Tensor> b = backbone.state_dict();
        readonly Dictionary<string, Tensor> h = head.state_dict();

        public bool Has(string key) => b.ContainsKey(key);
        /// <summary>The backbone's state-dict names.</summary>
        public IEnumerable<string> Keys => b.Keys;
        /// <summary>A backbone tensor's shape, without copying its data out.</summary>
        public long[] Shape(string key) => b.TryGetValue(key, out var t) ? t.shape
            : throw new InvalidOperationException($"ONNX export: the backbone has no tensor '{key}'");
        public (float[] Data, long[] Shape) Backbone(string key) => Read(b, key, "backbone");
        public (float[] Data, long[] Shape) Head(string key) => Read(h, key, "classifier");

        static (float[], long[]) Read(Dictionary<string, Tensor> d, string key, string what)
        {
            if (!d.TryGetValue(key,
                out var t)) throw new InvalidOperationException($"ONNX export: the {what} has no tensor '{key}'");
            using var f = t.detach().to(ScalarType.Float32).cpu().contiguous();
            return (f.data<float>().ToArray(), f.shape);
        }

        /// <summary>BatchNorm <paramref name="bn"/> as y = x * scale + shift (eval mode: running statistics).</summary>
        public (double[] Scale, double[] Shift) Norm(string bn)
        {
            var (gamma, _) = Backbone(bn + ".weight");
            var (beta, _) = Backbone(bn + ".bias");
            var (mean, _) = Backbone(bn + ".running_mean");
            var (variance, _) = Backbone(bn + ".running_var");
            var scale = new double[gamma.Length];
            var shift = new double[gamma.Length];
            for (int c = 0; c < gamma.Length; c++)
            {
                scale[c] = gamma[c] / Math.Sqrt(variance[c] + BnEps);
                shift[c] = beta[c] - mean[c] * scale[c];
            }
            return (scale, shift);
        }
    }

    /// <summary>conv (no bias) then BatchNorm, folded into one Conv: W' = W * g / sqrt(v + eps), b' = beta - m * g /
    /// sqrt(v + eps).</summary>
    static string ConvBn(OnnxGraph g, Weights w, string x, string conv, string bn, int stride, int padding,
        int inChannels)
    {
        var (weight, shape) = w.Backbone(conv + ".weight");
        var (scale, shift) = w.Norm(bn);
        long perOut = weight.Length / shape[0];
        var folded = new float[weight.Length];
        for (int o = 0; o < shape[0]; o++)
            for (long i = 0; i < perOut; i++) folded[o * perOut + i] = (float)(weight[o * perOut + i] * scale[o]);
        int groups = checked((int)(inChannels / shape[1]));
        return g.Node("Conv", [x, g.Floats(conv.Replace('.', '_') + "_w", folded, shape), g.Floats(conv.Replace('.',
            '_') + "_b", [.. shift.Select(v => (float)v)], shape[0])],
            Ints("kernel_shape", shape[2], shape[3]), Ints("strides", stride, stride), Ints("pads", padding, padding,
                padding, padding),
            Int("group", groups), Ints("dilations", 1, 1));
    }

    static string Relu(OnnxGraph g, string x) => g.Node("Relu", [x]);

    static string[] Pool(OnnxGraph g, params string[] maps) =>
        [.. maps.Select(m => g.Node("Flatten", [g.Node("GlobalAveragePool", [m])], Int("axis", 1)))];

    // ---- CIFAR ResNets (option-A shortcuts) ----

    static string CifarTrunk(OnnxGraph g, Weights w, string x)
    {
        int channels = Channels(w, "conv1.weight", 1);
        var y = Relu(g, ConvBn(g, w, x, "conv1", "bn1", 1, 1, channels));
        int planes = 16;
        for (int stage = 1; stage <= 3; stage++) y = CifarStage(g, w, y, $"layer{stage}", ref planes,
            stage == 1 ? 1 : 2);
        return y;
    }

    static string[] RideMaps(OnnxGraph g, Weights w, string x, int experts)
    {
        int channels = Channels(w, "conv1.weight", 1);
        var shared = Relu(g, ConvBn(g, w, x, "conv1", "bn1", 1, 1, channels));
        int planes = 16;
        shared = CifarStage(g, w, shared, "layer1", ref planes, 1);
        var maps = new string[experts];
        for (int e = 0; e < experts; e++)
        {
            int p = planes;
            var y = CifarStage(g, w, shared, $"layer2s.{e}", ref p, 2);
            maps[e] = CifarStage(g, w, y, $"layer3s.{e}", ref p, 2);
        }
        return maps;
    }

    static readonly string[] ResLtNorms = ["BNH", "BNM", "BNT"];

    static string[] ResLtMaps(OnnxGraph g, Weights w, string trunk) =>
        [.. ResLtNorms.Select(bn =>
        {
            var (scale, shift) = w.Norm(bn);
            var y = g.Node("Mul", [trunk, g.Floats(bn + "_scale", [.. scale.Select(v => (float)v)], 1, scale.Length, 1,
                1)]);
            return g.Node("Add", [y, g.Floats(bn + "_shift", [.. shift.Select(v => (float)v)], 1, shift.Length, 1, 1)]);
        })];

    static string CifarStage(OnnxGraph g, Weights w, string x, string prefix, ref int inPlanes, int stride)
    {
        for (int i = 0; w.Has($"{prefix}.{i}.conv1.weight"); i++)
        {
            var block = $"{prefix}.{i}";
            int planes = Channels(w, block + ".conv1.weight", 0);
            int s = i == 0 ? stride : 1;
            var y = Relu(g, ConvBn(g, w, x, block + ".conv1", block + ".bn1", s, 1, inPlanes));
            y = ConvBn(g, w, y, block + ".conv2", block + ".bn2", 1, 1, planes);
            var shortcut = x;
            if (s != 1 || inPlanes != planes)
            {
                // x[:, :, ::s, ::s] then zero channels on both sides: the parameter-free option-A shortcut.
                shortcut = g.Node("Slice", [x, g.Int64s("starts", 0, 0), g.Int64s("ends", long.MaxValue, long.MaxValue),
                    g.Int64s("axes", 2, 3), g.Int64s("steps", s, s)]);
                long pad = (planes - inPlanes) / 2;
                shortcut = g.Node("Pad", [shortcut, g.Int64s("pads", 0, pad, 0, 0, 0, pad, 0, 0)], String("mode",
                    "constant"));
            }
            x = Relu(g, g.Node("Add", [y, shortcut]));
            inPlanes = planes;
        }
        return x;
    }

    // ---- ImageNet-style ResNets / ResNeXt (torchvision layout) ----

    static string ImageNetTrunk(OnnxGraph g, Weights w, string x)
    {
        int channels = Channels(w, "conv1.weight", 1);
        var y = Relu(g, ConvBn(g, w, x, "conv1", "bn1", 2, 3, channels));
        y = g.Node("MaxPool", [y], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1));
        int inPlanes = 64;
        for (int stage = 1; stage <= 4; stage++)
            for (int i = 0; w.Has($"layer{stage}.{i}.conv1.weight"); i++)
            {
                var block = $"layer{stage}.{i}";
                int s = i == 0 && stage > 1 ? 2 : 1;
                bool bottleneck = w.Has(block + ".conv3.weight");
                string z;
                int outPlanes;
                if (bottleneck)
                {
                    int width = Channels(w, block + ".conv1.weight", 0);
                    z = Relu(g, ConvBn(g, w, y, block + ".conv1", block + ".bn1", 1, 0, inPlanes));
                    z = Relu(g, ConvBn(g, w, z, block + ".conv2", block + ".bn2", s, 1, width));
                    z = ConvBn(g, w, z, block + ".conv3", block + ".bn3", 1, 0, width);
                    outPlanes = Channels(w, block + ".conv3.weight", 0);
                }
                else
                {
                    int planes = Channels(w, block + ".conv1.weight", 0);
                    z = Relu(g, ConvBn(g, w, y, block + ".conv1", block + ".bn1", s, 1, inPlanes));
                    z = ConvBn(g, w, z, block + ".conv2", block + ".bn2", 1, 1, planes);
                    outPlanes = planes;
                }
                var identity = w.Has(block + ".downsample.0.weight")
                    ? ConvBn(g, w, y, block + ".downsample.0", block + ".downsample.1", s, 0, inPlanes)
                    : y;
                y = Relu(g, g.Node("Add", [z, identity]));
                inPlanes = outPlanes;
            }
        return y;
    }

    // ---- ConvNeXt (torchvision layout) ----

    const float ConvNeXtEps = 1e-6f;

    /// <summary>torchvision's ConvNeXt features, then classifier.0 on the pooled map: N x C x 1 x 1, whose pooling
    /// (the identity) is what the backbone's map pools to.</summary>
    static string ConvNeXtTrunk(OnnxGraph g, Weights w, string x)
    {
        var y = LayerNorm2d(g, w, BiasedConv(g, w, x, "features.0.0", 4, 0, 1), "features.0.1");
        for (int f = 1; w.Has($"features.{f}.0.layer_scale") || w.Has($"features.{f}.0.weight"); f++)
        {
            if (w.Has($"features.{f}.0.layer_scale"))
                for (int i = 0; w.Has($"features.{f}.{i}.layer_scale"); i++) y = CnBlock(g, w, y, $"features.{f}.{i}");
            else
                y = BiasedConv(g, w, LayerNorm2d(g, w, y, $"features.{f}.0"), $"features.{f}.1", 2, 0, 1);
        }
        var pooled = g.Node("GlobalAveragePool", [y]);
        int c = Channels(w, "classifier.0.weight", 0);
        return g.Node("LayerNormalization", [pooled, g.Floats("final_norm_w", w.Backbone("classifier.0.weight").Data,
            c, 1, 1), g.Floats("final_norm_b", w.Backbone("classifier.0.bias").Data, c, 1, 1)], Int("axis", 1),
            Float("epsilon", ConvNeXtEps));
    }

    /// <summary>CNBlock: x + layer_scale * Linear(GELU(Linear(LN(dwconv7x7(x))))), the MLP on N x H x W x C.</summary>
    static string CnBlock(OnnxGraph g, Weights w, string x, string block)
    {
        int c = Channels(w, block + ".block.0.weight", 0);
        var z = g.Node("Transpose", [BiasedConv(g, w, x, block + ".block.0", 1, 3, c)], Ints("perm", 0, 2, 3, 1));
        z = LastAxisNorm(g, w, z, block + ".block.2");
        z = Dense(g, w, z, block + ".block.3");
        z = Gelu(g, z);
        z = g.Node("Transpose", [Dense(g, w, z, block + ".block.5")], Ints("perm", 0, 3, 1, 2));
        var (scale, _) = w.Backbone(block + ".layer_scale");
        z = g.Node("Mul", [z, g.Floats("layer_scale", scale, c, 1, 1)]);
        return g.Node("Add", [z, x]);
    }

    /// <summary>GELU(z) = z / 2 * (1 + erf(z / sqrt 2)), torch's exact form.</summary>
    static string Gelu(OnnxGraph g, string z)
    {
        var erf = g.Node("Erf", [g.Node("Div", [z, g.Floats("sqrt2", [MathF.Sqrt(2f)], 1)])]);
        return g.Node("Mul", [g.Node("Mul", [z, g.Node("Add", [erf, g.Floats("one", [1f], 1)])]),
            g.Floats("half", [0.5f], 1)]);
    }

    static string BiasedConv(OnnxGraph g, Weights w, string x, string conv, int stride, int padding, int groups)
    {
        var (weight, shape) = w.Backbone(conv + ".weight");
        var (bias, _) = w.Backbone(conv + ".bias");
        return g.Node("Conv", [x, g.Floats(conv.Replace('.', '_') + "_w", weight, shape), g.Floats(conv.Replace('.',
            '_') + "_b", bias, shape[0])], Ints("kernel_shape", shape[2], shape[3]), Ints("strides", stride, stride),
            Ints("pads", padding, padding, padding, padding), Int("group", groups), Ints("dilations", 1, 1));
    }

    /// <summary>torchvision's LayerNorm2d: a LayerNorm over the channels at every position.</summary>
    static string LayerNorm2d(OnnxGraph g, Weights w, string x, string norm) =>
        g.Node("Transpose", [LastAxisNorm(g, w, g.Node("Transpose", [x], Ints("perm", 0, 2, 3, 1)), norm)],
            Ints("perm", 0, 3, 1, 2));

    static string LastAxisNorm(OnnxGraph g, Weights w, string x, string norm, float eps = ConvNeXtEps)
    {
        var (gamma, shape) = w.Backbone(norm + ".weight");
        var (beta, _) = w.Backbone(norm + ".bias");
        return g.Node("LayerNormalization", [x, g.Floats(norm.Replace('.', '_') + "_w", gamma, shape),
            g.Floats(norm.Replace('.', '_') + "_b", beta, shape)], Int("axis", -1), Float("epsilon", eps));
    }

    /// <summary>A Linear on the last axis: x W^T + b (MatMul broadcasts over N x H x W).</summary>
    static string Dense(OnnxGraph g, Weights w, string x, string fc)
    {
        var (weight, shape) = w.Backbone(fc + ".weight");
        var bias = w.Has(fc + ".bias") ? w.Backbone(fc + ".bias").Data : null;
        return Dense(g, x, fc.Replace('.', '_'), weight, shape[0], shape[1], bias);
    }

    /// <summary>x W^T (+ b) for W stored <paramref name="outs"/> x <paramref name="ins"/>, row-major.</summary>
    static string Dense(OnnxGraph g, string x, string stem, float[] weight, long outs, long ins, float[]? bias)
    {
        var transposed = new float[outs * ins];
        for (long o = 0; o < outs; o++)
            for (long i = 0; i < ins; i++) transposed[i * outs + o] = weight[o * ins + i];
        var y = g.Node("MatMul", [x, g.Floats(stem + "_wt", transposed, ins, outs)]);
        return bias is null ? y : g.Node("Add", [y, g.Floats(stem + "_b", bias, outs)]);
    }

    // ---- Vision Transformers (VisionTransformer's torchvision names) ----

    /// <summary>
    /// VisionTransformer's forward at <paramref name="height"/> x <paramref name="width"/>: patch projection, class
    /// token then registers prepended, position embeddings (resampled as the forward resamples them when the grid is
    /// not the built one), ln_pre, the blocks, the final LayerNorm; returns the class token, N x C. The heads, eps and
    /// activation are not in the state dict, so they come from the backbone's config.
    /// </summary>
    static string VitTrunk(OnnxGraph g, Weights w, VisionTransformer vit, string x, int height, int width)
    {
        var c = vit.Config;
        // LoRA was folded into in_proj_weight when the checkpoint was opened; AdaptFormer and VPT are written below.
        // Any other tuning module would be left out, so refuse it rather than export another function.
        string adapters = Tuning.ModulePrefix + "adaptformer", prompts = Tuning.ModulePrefix + "vpt";
        if (w.Keys.FirstOrDefault(k => Tuning.IsTuningModule(k) && !k.StartsWith(adapters + ".",
                StringComparison.Ordinal) && !k.StartsWith(prompts + ".", StringComparison.Ordinal)) is { } tuned)
            throw new NotSupportedException($"ONNX export does not know the ViT's tuning module '{tuned}'");
        int gh = (height - c.Patch) / c.Patch + 1, gw = (width - c.Patch) / c.Patch + 1; // the Conv's output grid
        var (proj, projShape) = w.Backbone("conv_proj.weight");
        string[] convInputs = w.Has("conv_proj.bias")
            ? [x, g.Floats("conv_proj_w", proj, projShape), g.Floats("conv_proj_b", w.Backbone("conv_proj.bias").Data,
                projShape[0])]
            : [x, g.Floats("conv_proj_w", proj, projShape)];
        var p = g.Node("Conv", convInputs, Ints("kernel_shape", c.Patch, c.Patch), Ints("strides", c.Patch, c.Patch),
            Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1));
        // N x C x gh x gw -> N x L x C
        var patches = g.Node("Transpose", [g.Node("Reshape", [p, g.Int64s("tokens_shape", 0, c.Width, -1)])],
            Ints("perm", 0, 2, 1));

        var pos = Positions(g, vit, gh, gw);
        var prefix = new List<string> { BatchExpand(g, patches, w.Backbone("class_token").Data, 1, c.Width, "cls") };
        if (c.RegisterTokens > 0)
            prefix.Add(BatchExpand(g, patches, w.Backbone("reg_token").Data, c.RegisterTokens, c.Width, "reg"));
        var tokens = c.NoEmbedClass
            ? g.Node("Concat", [.. prefix, g.Node("Add", [patches, pos])], Int("axis", 1))
            : g.Node("Add", [g.Node("Concat", [.. prefix, patches], Int("axis", 1)), pos]);
        float eps = (float)c.Eps;
        if (c.PreNorm) tokens = LastAxisNorm(g, w, tokens, "encoder.ln_pre", eps);
        long sequence = c.PrefixTokens + (long)gh * gw;
        for (int i = 0; i < vit.Blocks.Count; i++)
        {
            // VPT: the embedded sequence, then this layer's prompts (shallow: the first layer only).
            if (w.Has($"{prompts}.prompts.{i}"))
            {
                var (values, shape) = w.Backbone($"{prompts}.prompts.{i}");
                var kept = g.Node("Slice", [tokens, g.Int64s($"vpt_start_{i}", 0), g.Int64s($"vpt_end_{i}", sequence),
                    g.Int64s($"vpt_axis_{i}", 1)]);
                tokens = g.Node("Concat", [kept, BatchExpand(g, tokens, values, shape[0], c.Width, $"vpt_{i}")],
                    Int("axis", 1));
            }
            var adapter = w.Has($"{adapters}.{i}.scale") ? $"{adapters}.{i}" : null;
            tokens = VitBlock(g, w, tokens, $"encoder.layers.encoder_layer_{i}", c.Width, vit.Blocks[i].Attention.Heads,
                vit.Blocks[i].Mlp.Activation, eps, adapter);
        }
        tokens = LastAxisNorm(g, w, tokens, "encoder.ln", eps);
        // the class token: index 0 on the token axis (a scalar index drops the axis)
        return g.Node("Gather", [tokens, g.Int64Scalar("cls_index", 0)], Int("axis", 1));
    }

    /// <summary>The position embeddings 1 x rows x C at a gh x gw patch grid, resampled in TorchSharp exactly as
    /// <see cref="VisionTransformer.Embed"/> does at run time when the grid is not the built one.</summary>
    static string Positions(OnnxGraph g, VisionTransformer vit, int gh, int gw)
    {
        var c = vit.Config;
        var stored = vit.state_dict()["encoder.pos_embedding"];
        using var scope = NewDisposeScope();
        var pos = gh == c.Grid && gw == c.Grid ? stored.detach()
            : VisionTransformer.ResamplePositions(stored.detach(), c.NoEmbedClass ? 0 : 1, (c.Grid, c.Grid), (gh, gw),
                PositionResampling.Timm);
        using var f = pos.to(ScalarType.Float32).cpu().contiguous();
        return g.Floats("pos_embedding", f.data<float>().ToArray(), f.shape);
    }

    /// <summary>A learnt 1 x <paramref name="rows"/> x C constant repeated over the batch of
    /// <paramref name="like"/> (N x L x C; N is symbolic): Expand to [N, rows, C].</summary>
    static string BatchExpand(OnnxGraph g, string like, float[] values, long rows, long width, string stem)
    {
        var n = g.Node("Shape", [like], Int("start", 0), Int("end", 1));
        var shape = g.Node("Concat", [n, g.Int64s(stem + "_rows", rows, width)], Int("axis", 0));
        return g.Node("Expand", [g.Floats(stem, values, 1, rows, width), shape]);
    }

    /// <summary>One encoder layer: x + ls_1(attention(ln_1(x))), then + ls_2(mlp(ln_2(x))).</summary>
    static string VitBlock(OnnxGraph g, Weights w, string x, string block, int width, int heads,
        VitActivation activation, float eps, string? adapter = null)
    {
        var a = VitAttention(g, w, LastAxisNorm(g, w, x, block + ".ln_1", eps), block + ".self_attention", width,
            heads);
        x = g.Node("Add", [x, LayerScale(g, w, a, block + ".ls_1")]);
        var h = Dense(g, w, LastAxisNorm(g, w, x, block + ".ln_2", eps), block + ".mlp.0");
        h = activation == VitActivation.QuickGelu
            ? g.Node("Mul", [h, g.Node("Sigmoid", [g.Node("Mul", [h, g.Floats("quick_gelu", [1.702f], 1)])])])
            : Gelu(g, h);
        var m = LayerScale(g, w, Dense(g, w, h, block + ".mlp.3"), block + ".ls_2");
        if (adapter is not null)
        {
            // AdaptFormer beside the MLP: scale * up(relu(down(ln(x)))) of the MLP sub-layer's input.
            var a2 = Dense(g, w, LastAxisNorm(g, w, x, adapter + ".ln", eps), adapter + ".down_proj");
            a2 = Dense(g, w, g.Node("Relu", [a2]), adapter + ".up_proj");
            m = g.Node("Add", [m, g.Node("Mul", [a2, g.Floats(adapter.Replace('.', '_') + "_scale",
                w.Backbone(adapter + ".scale").Data, 1)])]);
        }
        return g.Node("Add", [x, m]);
    }

    static string LayerScale(OnnxGraph g, Weights w, string x, string ls) => w.Has(ls + ".gamma")
        ? g.Node("Mul", [x, g.Floats(ls.Replace('.', '_'), w.Backbone(ls + ".gamma").Data, w.Shape(ls + ".gamma"))])
        : x;

    /// <summary>
    /// nn.MultiheadAttention's self-attention over N x L x C: q, k, v from in_proj (q's rows and bias pre-scaled by
    /// 1 / sqrt(d), which is softmax(q k^T / sqrt d) v), per head, then out_proj.
    /// </summary>
    static string VitAttention(OnnxGraph g, Weights w, string x, string attn, int width, int heads)
    {
        var (weight, _) = w.Backbone(attn + ".in_proj_weight");
        var (bias, _) = w.Backbone(attn + ".in_proj_bias");
        int d = width / heads;
        float scale = 1f / MathF.Sqrt(d);
        var stem = attn.Replace('.', '_');
        string Project(int part, string name, long[] perm)
        {
            var rows = weight.AsSpan(part * width * width, width * width).ToArray();
            var b = bias.AsSpan(part * width, width).ToArray();
            if (part == 0)
            {
                for (int i = 0; i < rows.Length; i++) rows[i] *= scale;
                for (int i = 0; i < b.Length; i++) b[i] *= scale;
            }
            var y = Dense(g, x, stem + "_" + name, rows, width, width, b);
            y = g.Node("Reshape", [y, g.Int64s("heads_shape", 0, -1, heads, d)]);
            return g.Node("Transpose", [y], Ints("perm", perm));
        }
        var q = Project(0, "q", [0, 2, 1, 3]);  // N x H x L x d
        var k = Project(1, "k", [0, 2, 3, 1]);  // N x H x d x L
        var v = Project(2, "v", [0, 2, 1, 3]);
        var attention = g.Node("Softmax", [g.Node("MatMul", [q, k])], Int("axis", -1));
        var o = g.Node("Transpose", [g.Node("MatMul", [attention, v])], Ints("perm", 0, 2, 1, 3));
        o = g.Node("Reshape", [o, g.Int64s("width_shape", 0, -1, width)]);
        return Dense(g, w, o, attn + ".out_proj");
    }

    static int Channels(Weights w, string key, int axis) => checked((int)w.Shape(key)[axis]);

    // ---- classifiers, on pooled features N x C (one per expert) ----

    static void Head(OnnxGraph g, Weights w, ClassifierHead head, string[] pooled)
    {
        switch (head)
        {
            case LinearHead:
                Single(pooled, head);
                Gemm(g, pooled[0], w.Head("fc.weight"), w.Head("fc.bias").Data, 1f);
                break;
            case LwsHead:
            {
                Single(pooled, head);
                var (scales, _) = w.Head("scales");
                Gemm(g, pooled[0], w.Head("fc.weight"), w.Head("fc.bias").Data, 1f, scales);
                break;
            }
            case CosineHead cosine:
            {
                Single(pooled, head);
                var cos = Cosine(g, pooled[0], w.Head("fc.weight"));
                if (cosine.Scale != 1.0) g.Node("Mul", [cos, g.Floats("cosine_scale", [(float)cosine.Scale], 1)]);
                break;
            }
            case RideHead ride:
            {
                var logits = pooled.Select((f, e) => g.Node("Mul", [Cosine(g, f, w.Head($"linears.{e}.weight")),
                    g.Floats("ride_scale", [(float)RideHead.Scale], 1)])).ToArray();
                g.Node("Div", [g.Node("Sum", logits), g.Floats("experts", [ride.Experts], 1)]);
                break;
            }
            case ResLtHead:
            {
                var (weight, shape) = w.Head("fc.weight");
                var bias = w.Head("fc.bias").Data;
                var logits = pooled.Select(f => Gemm(g, f, (weight, shape), bias, 1f)).ToArray();
                g.Node("Sum", logits);
                break;
            }
            default:
                throw new NotSupportedException($"ONNX export does not know the '{head.Kind}' classifier");
        }
    }

    static void Single(string[] pooled, ClassifierHead head)
    {
        if (pooled.Length != 1) throw new InvalidOperationException(
            $"the {head.Kind} classifier takes one feature map, the backbone gives {pooled.Length}");
    }

    /// <summary>x W^T + b, with per-class <paramref name="classScale"/> (LWS) folded into W and b.</summary>
    static string Gemm(OnnxGraph g, string x, (float[] Data, long[] Shape) weight, float[] bias, float alpha,
        float[]? classScale = null)
    {
        var (wd, shape) = weight;
        var wf = (float[])wd.Clone();
        var bf = (float[])bias.Clone();
        if (classScale is not null)
            for (int k = 0; k < shape[0]; k++)
            {
                for (long i = 0; i < shape[1]; i++) wf[k * shape[1] + i] *= classScale[k];
                bf[k] *= classScale[k];
            }
        return g.Node("Gemm", [x, g.Floats("fc_w", wf, shape), g.Floats("fc_b", bf, shape[0])], Int("transB", 1),
            Float("alpha", alpha));
    }

    /// <summary>normalize(x, dim 1) @ normalize(W, dim 0) for W stored in x classes (NormedLinear), eps 1e-12 as
    /// F.normalize.</summary>
    static string Cosine(OnnxGraph g, string x, (float[] Data, long[] Shape) weight)
    {
        var (wd, shape) = weight;
        long rows = shape[0], cols = shape[1];
        var unit = new float[wd.Length];
        for (long k = 0; k < cols; k++)
        {
            double sq = 0;
            for (long i = 0; i < rows; i++) sq += (double)wd[i * cols + k] * wd[i * cols + k];
            double norm = Math.Max(Math.Sqrt(sq), 1e-12);
            for (long i = 0; i < rows; i++) unit[i * cols + k] = (float)(wd[i * cols + k] / norm);
        }
        var norm2 = g.Node("ReduceL2", [x], Ints("axes", 1), Int("keepdims", 1));
        var normalized = g.Node("Div", [x, g.Node("Max", [norm2, g.Floats("eps", [1e-12f], 1)])]);
        return g.Node("MatMul", [normalized, g.Floats("cos_w", unit, rows, cols)]);
    }
}
