using H2T.Interop;
using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using H2T.Data;
using Onnx;
using static TorchSharp.torch;

namespace H2T.Onnx;

/// <summary>The backbone weights of a ResNet-family ONNX model, under our (torchvision's) state-dict names.</summary>
public sealed class OnnxResNet : IDisposable
{
    /// <summary>Our architecture name for the graph's shape (resnet18, resnet50, resnet18_cntk ...).</summary>
    public required string Architecture { get; init; }
    /// <summary>The file's producer, e.g. "CNTK 2.6", "pytorch 1.13.0", "H2T.NET 0.1.0".</summary>
    public required string Producer { get; init; }
    public required Dictionary<string, Tensor> Backbone { get; init; }
    public required int InChannels { get; init; }
    /// <summary>Blocks per stage, as the graph has them.</summary>
    public required int[] Blocks { get; init; }
    /// <summary>Whether the graph's convolutions carry their BatchNorms folded in (torch.onnx.export in eval mode, our
    /// export): they come in as identity BatchNorms with the conv's bias.</summary>
    public required bool FoldedBatchNorm { get; init; }
    /// <summary>The per-channel affine map the graph applies to its input before the first convolution, as
    /// (x - mean) / std in the input's own units; null when the input goes straight into the convolution.</summary>
    public Normalization? InputTransform { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    public List<string> Notes { get; } = [];

    public void Dispose()
    {
        foreach (var t in Backbone.Values) t.Dispose();
    }
}

/// <summary>
/// Reads a ResNet-family ONNX model by walking its graph, never by initializer names: the stem (Conv, BatchNorm,
/// Relu, MaxPool), then residual blocks found backwards from the global pool (Relu of an Add whose two inputs are a
/// chain of Conv [+ BatchNorm] [+ Relu] units and either the block input or a 1x1 Conv [+ BatchNorm] of it).
/// Blocks per stage, basic or bottleneck, groups and padding give the architecture. Covers CNTK's exports (ML.NET's
/// ResNet18.onnx, opset 8), <c>torch.onnx.export</c> of torchvision's ResNets (BatchNorm folded or kept) and our own
/// <c>h2t export</c>. A graph of another shape is refused with the first node that does not fit.
/// </summary>
public static class OnnxResNetReader
{
    const double OurEps = 1e-5; // the eps of every BatchNorm2d we build

    static readonly HashSet<string> TrunkOps = ["Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "Sub", "Div",
        "Mul", "Constant", "Identity"];
    static readonly HashSet<string> PoolOps = ["GlobalAveragePool", "AveragePool", "ReduceMean"];

    /// <summary>(bottleneck, blocks, groups, same padding) to our architecture names.</summary>
    static readonly (bool Bottleneck, int[] Blocks, long Groups, bool Same, string Name)[] Shapes =
    [
        (false, [1, 1, 1, 1], 1, false, "resnet10"),
        (false, [2, 2, 2, 2], 1, false, "resnet18"),
        (false, [3, 4, 6, 3], 1, false, "resnet34"),
        (false, [2, 2, 2, 3], 1, false, "resnet18_cntk"),
        (true, [3, 4, 6, 3], 1, false, "resnet50"),
        (true, [3, 4, 6, 3], 32, false, "resnext50_32x4d"),
        (true, [3, 8, 36, 3], 1, false, "resnet152"),
    ];

    /// <summary>An ONNX file by its name or its first byte (field 1, ir_version, as a varint: 0x08); torch.save files
    /// start with PK (zip) or 0x80 (pickle).</summary>
    public static bool LooksLikeOnnx(string path)
    {
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return true;
        using var s = File.OpenRead(path);
        return s.ReadByte() == 0x08;
    }

    public static float[] FloatsOf(TensorProto t) => Graph.Floats(t);

    public static ModelProto Parse(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found (expected an ONNX model)",
            path);
        try
        {
            using var s = File.OpenRead(path);
            var model = ModelProto.Parser.ParseFrom(s);
            if (model.Graph is null ||
                model.Graph.Node.Count == 0) throw new DataFormatException($"{path}: not an ONNX model (no graph)");
            return model;
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new DataFormatException($"{path}: not an ONNX model ({e.Message})", e);
        }
    }

    /// <summary>
    /// The per-channel map a ResNet graph applies to its input before its first convolution (<see
    /// cref="OnnxResNet.InputTransform"/>), found without reading the weights; null when there is none.
    /// </summary>
    public static Normalization? InputTransformOf(string path, ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = new Graph(path, model.Graph);
        var stem = graph.Nodes.FirstOrDefault(n => n.OpType == "Conv")
            ?? throw new DataFormatException($"{path}: no Conv node: not a ResNet");
        return graph.InputTransform(graph.Resolve(stem.Input[0])).Transform;
    }

    public static OnnxResNet Read(string path)
    {
        var model = Parse(path);
        var graph = new Graph(path, model.Graph);
        var producer = $"{model.ProducerName} {model.ProducerVersion}".Trim();
        var metadata = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);

        // The trunk ends where the first global pool starts; everything after it is the (unused) classifier.
        int poolIndex = graph.Nodes.FindIndex(n => PoolOps.Contains(n.OpType));
        if (poolIndex < 0) throw new DataFormatException(
            $"{path}: no global pooling node (GlobalAveragePool / AveragePool): not a ResNet feature extractor");
        for (int i = 0; i < poolIndex; i++)
            if (!TrunkOps.Contains(graph.Nodes[i].OpType))
                throw graph.Misfit(i,
                    $"a ResNet trunk has only {string.Join(", ", TrunkOps.Order(StringComparer.Ordinal))} before its " +
                    $"global pool");
        var pool = graph.Nodes[poolIndex];

        // Blocks, backwards from the pool's input.
        var blocks = new List<Block>();
        string v = graph.Resolve(pool.Input[0]);
        while (true)
        {
            var (relu, ri) = graph.ProducerOf(v, "the trunk's output (a Relu)");
            if (relu.OpType != "Relu") throw graph.Misfit(ri,
                "expected the Relu that ends a residual block or the stem");
            var inner = graph.Resolve(relu.Input[0]);
            var (add, ai) = graph.ProducerOf(inner, "a Relu's input");
            if (add.OpType == "MaxPool") throw graph.Misfit(ai, "expected a residual Add before this Relu");
            if (add.OpType != "Add")
            {
                if (blocks.Count == 0) throw graph.Misfit(ai, "expected the Add of the last residual block");
                break;
            }
            var a = graph.Chain(graph.Resolve(add.Input[0]));
            var b = graph.Chain(graph.Resolve(add.Input[1]));
            var (main, shortcut) = a.Units.Count >= b.Units.Count ? (a, b) : (b, a);
            if (main.Units.Count is not (2 or 3)) throw graph.Misfit(ai,
                $"a residual branch of {main.Units.Count} convolution(s); basic blocks have 2, bottlenecks 3");
            if (shortcut.Units.Count > 1) throw graph.Misfit(ai,
                "the shortcut of a residual block has at most one convolution");
            if (shortcut.Start != main.Start) throw graph.Misfit(ai,
                "the two inputs of this Add do not start from the same block input");
            blocks.Add(new Block(main.Units, shortcut.Units.Count == 1 ? shortcut.Units[0] : null));
            v = main.Start;
            var (p, pi) = graph.ProducerOf(v, "a block input");
            if (p.OpType == "MaxPool") break;
            if (p.OpType != "Relu") throw graph.Misfit(pi,
                "expected the Relu of the block before, or the stem's MaxPool");
        }
        blocks.Reverse();

        // Stem: MaxPool <- Relu <- [BatchNorm <-] Conv <- [Sub / Div / Mul / Add with constants] <- input.
        var (maxpool, mi) = graph.ProducerOf(v, "the first block's input");
        if (maxpool.OpType != "MaxPool") throw graph.Misfit(mi, "expected the stem's MaxPool");
        var poolWindow = Window.Of(graph, maxpool, mi);
        if (poolWindow.Kernel != 3 || poolWindow.Stride != 2) throw graph.Misfit(mi,
            "the stem's MaxPool is 3x3, stride 2");
        var (stemRelu, sri) = graph.ProducerOf(graph.Resolve(maxpool.Input[0]), "the stem's MaxPool input");
        if (stemRelu.OpType != "Relu") throw graph.Misfit(sri, "expected the stem's Relu");
        var stem = graph.Unit(graph.Resolve(stemRelu.Input[0]));
        if (stem.Window.Kernel != 7 || stem.Window.Stride != 2) throw graph.Misfit(stem.ConvIndex,
            "the stem convolution is 7x7, stride 2");
        var (input, transform) = graph.InputTransform(graph.Resolve(stem.Conv.Input[0]));
        if (input != graph.DataInput) throw graph.Misfit(graph.ProducerOf(input, "the stem's input").Index,
            "expected the graph input or a per-channel Sub / Div / Mul / Add of it");

        // Stages: a block with a projection shortcut that changes the width opens the next stage.
        var stages = new List<List<Block>>();
        long width = -1;
        foreach (var block in blocks)
        {
            long outWidth = block.Main[^1].OutChannels;
            if (stages.Count == 0 || (block.Shortcut is not null && outWidth != width)) stages.Add([]);
            stages[^1].Add(block);
            width = outWidth;
        }
        bool bottleneck = blocks[0].Main.Count == 3;
        // torchvision's layout (ResNet v1.5): a stage's first block strides on its 3x3 convolution (conv2 of a
        // bottleneck, conv1 of a basic block) and its projection; everything else has stride 1. A graph that strides
        // elsewhere (v1 bottlenecks stride on their first 1x1) computes something else and is refused.
        for (int st = 0; st < stages.Count; st++)
            for (int i = 0; i < stages[st].Count; i++)
            {
                var block = stages[st][i];
                long want = st > 0 && i == 0 ? 2 : 1;
                int strided = block.Main.Count == 3 ? 1 : 0;
                for (int u = 0; u < block.Main.Count; u++)
                    if (block.Main[u].Window.Stride != (u == strided ? want : 1))
                        throw graph.Misfit(block.Main[u].ConvIndex,
                            $"stride {block.Main[u].Window.Stride}, where layer{st + 1}.{i}.conv{u + 1} has stride " +
                            $"{(u == strided ? want : 1)} " +
                            $"(torchvision's layout strides a stage's first block on its " +
                                $"{(block.Main.Count == 3 ? "3x3 conv2" : "conv1")} and its projection only)");
                if (block.Shortcut is { } sc && sc.Window.Stride != want)
                    throw graph.Misfit(sc.ConvIndex,
                        $"stride {sc.Window.Stride}: layer{st + 1}.{i}'s projection strides {want}");
            }
        if (blocks.Any(b => b.Main.Count != blocks[0].Main.Count))
            throw graph.Misfit(blocks.First(b => b.Main.Count != blocks[0].Main.Count).Main[0].ConvIndex,
                "every block of the network has the same kind (basic or bottleneck)");
        long groups = bottleneck ? blocks[0].Main[1].Window.Group : 1;
        var windows = new List<(Window Shape, int Index)> { (stem.Window, stem.ConvIndex), (poolWindow, mi) };
        windows.AddRange(blocks.SelectMany(b => b.Main.Select(u => (u.Window, u.ConvIndex))));
        bool same = windows.Any(w => w.Shape.Same);
        foreach (var (w, index) in windows)
        {
            if (w.Kernel > 1 && w.Stride > 1 && w.Same != same)
                throw graph.Misfit(index,
                    "strided windows pad alike: all symmetric (torchvision) or all p before / p - 1 after (CNTK)");
        }
        var counts = stages.Select(s => s.Count).ToArray();
        // CNTK's fixed pads (p before, p - 1 after) equal symmetric ones at the even sizes its file runs at.
        var shape = Shapes.FirstOrDefault(s => s.Bottleneck == bottleneck && s.Blocks.SequenceEqual(counts) &&
            s.Groups == groups);
        if (shape.Name is null)
            throw new DataFormatException(
                $"{path}: a ResNet with {(bottleneck ? "bottleneck" : "basic")} blocks [{string.Join(", ", counts)}]" +
                (groups > 1 ? $", {groups} groups" : "") + " is not one of ours: " +
                string.Join("; ",
                    Shapes.Select(s =>
                    $"{s.Name} ({(s.Bottleneck ? "bottleneck" : "basic")} [{string.Join(", ", s.Blocks)}])")));

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        bool folded = false;
        try
        {
            folded |= graph.Emit(stem, "conv1", "bn1", tensors);
            for (int s = 0; s < stages.Count; s++)
                for (int i = 0; i < stages[s].Count; i++)
                {
                    var prefix = $"layer{s + 1}.{i}";
                    var block = stages[s][i];
                    for (int u = 0; u < block.Main.Count; u++) folded |= graph.Emit(block.Main[u],
                        $"{prefix}.conv{u + 1}", $"{prefix}.bn{u + 1}", tensors);
                    if (block.Shortcut is { } sc) folded |= graph.Emit(sc, $"{prefix}.downsample.0",
                        $"{prefix}.downsample.1", tensors);
                }
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        var result = new OnnxResNet
        {
            Architecture = shape.Name, Producer = producer, Backbone = tensors,
                InChannels = checked((int)stem.InChannels), Blocks = counts,
            FoldedBatchNorm = folded, InputTransform = transform, Metadata = metadata,
        };
        if (folded) result.Notes.Add(
            "the graph's BatchNorms are folded into its convolutions: they come in as identity BatchNorms carrying " +
            "the convolutions' biases (exact in eval mode; a stage I that trains them starts their statistics afresh)");
        if (same) result.Notes.Add(
            "the graph pads strided windows p before and p - 1 after (CNTK's 'same', fixed for its input size): at " +
            "even sizes that is symmetric padding's result, and at odd sizes CNTK's rule pads symmetrically, so the " +
            "backbone pads as torchvision does");
        return result;
    }

    sealed record Window(long Kernel, long Stride, long Pad, bool Same, long Group)
    {
        public static Window Of(Graph g, NodeProto node, int index)
        {
            if (Graph.Attr(node,
                "auto_pad") is { } ap && ap.S.ToStringUtf8() is var mode && mode is not ("" or "NOTSET"))
                throw g.Misfit(index, $"auto_pad {mode}: expected explicit pads");
            var k = Graph.Attr(node, "kernel_shape")?.Ints.ToArray() ?? throw g.Misfit(index, "no kernel_shape");
            var st = Graph.Attr(node, "strides")?.Ints.ToArray() ?? [1, 1];
            var pads = Graph.Attr(node, "pads")?.Ints.ToArray() ?? [0, 0, 0, 0];
            var dil = Graph.Attr(node, "dilations")?.Ints.ToArray() ?? [1, 1];
            long group = Graph.Attr(node, "group")?.I ?? 1;
            if (k.Length != 2 || k[0] != k[1] || st.Length != 2 || st[0] != st[1] || pads.Length != 4 || dil.Any(d =>
                d != 1))
                throw g.Misfit(index, "expected a square 2-D window, equal strides, no dilation");
            long p = pads[0];
            if (pads[1] != p) throw g.Misfit(index,
                $"pads [{string.Join(", ", pads)}]: expected the same padding on both axes");
            bool same = pads[2] == p - 1 && pads[3] == p - 1 && p > 0;
            if (!same && (pads[2] != p || pads[3] != p)) throw g.Misfit(index,
                $"pads [{string.Join(", ", pads)}]: expected symmetric pads or p before / p - 1 after");
            if (p != (k[0] - 1) / 2) throw g.Misfit(index,
                $"pads [{string.Join(", ", pads)}] for a {k[0]}x{k[0]} window: a ResNet pads (k - 1) / 2");
            return new(k[0], st[0], p, same, group);
        }
    }

    sealed record Unit(NodeProto Conv, int ConvIndex, NodeProto? Norm, Window Window, long OutChannels,
        long InChannels);
    sealed record Chain(List<Unit> Units, string Start);
    sealed record Block(List<Unit> Main, Unit? Shortcut);

    sealed class Graph
    {
        readonly string path;
        readonly Dictionary<string, TensorProto> constants = new(StringComparer.Ordinal);
        readonly Dictionary<string, (NodeProto Node, int Index)> producers = new(StringComparer.Ordinal);
        readonly Dictionary<string, string> aliases = new(StringComparer.Ordinal);
        public List<NodeProto> Nodes { get; }
        public string DataInput { get; }

        public Graph(string path, GraphProto g)
        {
            this.path = path;
            Nodes = [.. g.Node];
            foreach (var t in g.Initializer) constants[t.Name] = t;
            for (int i = 0; i < Nodes.Count; i++)
            {
                var n = Nodes[i];
                foreach (var o in n.Output) producers[o] = (n, i);
                if (n.OpType == "Constant" && n.Attribute.FirstOrDefault(a =>
                    a.Name == "value")?.T is { } value) constants[n.Output[0]] = value;
                if (n.OpType == "Identity") aliases[n.Output[0]] = n.Input[0];
            }
            var inputs = g.Input.Select(i => i.Name).Where(n => !constants.ContainsKey(n)).ToList();
            if (inputs.Count != 1) throw new DataFormatException(
                $"{path}: expected one image input, found {inputs.Count} ({string.Join(", ", inputs)})");
            DataInput = inputs[0];
            var dim = g.Input.First(i => i.Name == DataInput).Type?.TensorType?.Shape?.Dim;
            InputChannels = dim is { Count: 4 } && dim[1].DimValue > 0 ? (int)dim[1].DimValue : 3;
        }

        /// <summary>The image input's channel count (its declared shape), 3 when not declared.</summary>
        public int InputChannels { get; }

        public string Resolve(string value)
        {
            while (aliases.TryGetValue(value, out var a)) value = a;
            return value;
        }

        public DataFormatException Misfit(int index, string expected)
        {
            var n = Nodes[index];
            var name = string.IsNullOrEmpty(n.Name) ? "" : $" '{n.Name}'";
            return new DataFormatException(
                $"{path}: node {index}{name} ({n.OpType}, output '{n.Output.FirstOrDefault()}') does not fit a " +
                $"ResNet: {expected}");
        }

        public (NodeProto Node, int Index) ProducerOf(string value, string what) =>
            producers.TryGetValue(value, out var p) ? p
                : throw new DataFormatException(
                    $"{path}: {what} '{value}' is " +
                    $"{(value == DataInput ? "the graph input" : "not produced by any node")}: not a ResNet of a " +
                    $"known shape");

        public static AttributeProto? Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name);

        public bool IsConstant(string value) => constants.ContainsKey(Resolve(value));

        /// <summary>[BatchNorm &lt;-] Conv ending at <paramref name="value"/>.</summary>
        public Unit Unit(string value)
        {
            var (node, index) = ProducerOf(value, "a convolution's output");
            NodeProto? norm = null;
            if (node.OpType == "BatchNormalization")
            {
                norm = node;
                (node, index) = ProducerOf(Resolve(norm.Input[0]), "a BatchNormalization's input");
            }
            if (node.OpType != "Conv") throw Misfit(index,
                norm is null ? "expected a Conv or a BatchNormalization after one" :
                "expected the Conv before this BatchNormalization");
            var weight = Constant(node.Input[1], index);
            return new Unit(node, index, norm, Window.Of(this, node, index), weight.Dims[0],
                weight.Dims[1] * (Attr(node, "group")?.I ?? 1));
        }

        /// <summary>The Conv units back from <paramref name="value"/> to the block input: the output of the block
        /// before (a Relu of an Add) or of the stem (a MaxPool).</summary>
        public Chain Chain(string value)
        {
            var units = new List<Unit>();
            while (true)
            {
                var (p, _) = ProducerOf(value, "a residual branch");
                if (p.OpType == "MaxPool" || (p.OpType == "Relu" && ProducerOf(Resolve(p.Input[0]),
                    "a Relu's input").Node.OpType == "Add"))
                    return new Chain(units, value);
                if (p.OpType == "Relu")
                {
                    if (units.Count == 0) throw Misfit(producers[value].Index,
                        "a residual branch ends in a convolution (or BatchNormalization), not a Relu");
                    value = Resolve(p.Input[0]);
                    continue;
                }
                var unit = Unit(value);
                units.Insert(0, unit);
                value = Resolve(unit.Conv.Input[0]);
                var (q, qi) = ProducerOf(value, "a convolution's input");
                if (q.OpType is not ("Relu" or "MaxPool")) throw Misfit(qi,
                    "expected a Relu between the convolutions of a block");
            }
        }

        /// <summary>Sub / Div / Mul / Add by constants between the input and the stem, as one per-channel (x - mean) /
        /// std.</summary>
        public (string Input, Normalization? Transform) InputTransform(string value)
        {
            double[]? scale = null, shift = null;
            var ops = new List<(string Op, float[] C)>();
            while (producers.TryGetValue(value, out var p) && p.Node.OpType is "Sub" or "Div" or "Mul" or "Add")
            {
                var n = p.Node;
                // Commutative ops may carry their constant first.
                int c = IsConstant(n.Input[1]) ? 1 : n.OpType is "Mul" or "Add" && IsConstant(n.Input[0]) ? 0 : -1;
                if (c < 0) throw Misfit(p.Index, "an input transform by a constant (per channel or scalar)");
                var t = Constant(n.Input[c], p.Index);
                // Per channel means [C, 1, 1] or [1, C, 1, 1]; a scalar is every channel's.
                var dims = t.Dims.ToArray();
                if (!(dims.Length == 0 || dims.All(d => d == 1) || (dims.Length >= 3 && dims[^1] == 1 &&
                    dims[^2] == 1 && dims.Take(dims.Length - 3).All(d => d == 1))))
                    throw Misfit(p.Index,
                        $"a constant of shape [{string.Join(", ", dims)}]: an input transform is per channel ([C, 1, " +
                        $"1]) or scalar");
                ops.Insert(0, (n.OpType, Floats(t)));
                value = Resolve(n.Input[1 - c]);
            }
            if (ops.Count == 0) return (value, null);
            int channels = ops.Max(o => o.C.Length);
            if (channels == 1) channels = InputChannels;
            scale = [.. Enumerable.Repeat(1.0, channels)];
            shift = new double[channels];
            foreach (var (op, c) in ops)
                for (int ch = 0; ch < channels; ch++)
                {
                    double k = c.Length == 1 ? c[0] : c[ch];
                    switch (op)
                    {
                        case "Sub": shift[ch] -= k; break;
                        case "Add": shift[ch] += k; break;
                        case "Mul": scale[ch] *= k; shift[ch] *= k; break;
                        default: scale[ch] /= k; shift[ch] /= k; break;
                    }
                }
            var mean = Enumerable.Range(0, channels).Select(ch => -shift[ch] / scale[ch]).ToArray();
            var std = scale.Select(s => 1 / s).ToArray();
            // A graph that takes 0..255 (a mean above 1.5) is the same map on x / 255 with mean and std / 255.
            double unit = mean.Any(m => Math.Abs(m) > 1.5) ? 255 : 1;
            return (value, new Normalization([.. mean.Select(m => (float)(m / unit))],
                [.. std.Select(v => (float)(v / unit))]));
        }

        TensorProto Constant(string value, int index) =>
            constants.TryGetValue(Resolve(value), out var t) ? t : throw Misfit(index,
                $"its input '{value}' is not a constant (initializer)");

        public static float[] Floats(TensorProto t)
        {
            if (t.DataType != (int)TensorProto.Types.DataType.Float)
                throw new DataFormatException($"tensor '{t.Name}': data type {t.DataType}, expected float32 (1)");
            if (t.DataLocation == TensorProto.Types.DataLocation.External) throw new DataFormatException(
                $"tensor '{t.Name}': external data is not read; save the model with its weights inside");
            return t.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : [.. t.FloatData];
        }

        Tensor ToTensor(string value, int index)
        {
            var t = Constant(value, index);
            try
            {
                var data = Floats(t);
                if (data.LongLength != t.Dims.Aggregate(1L, (a, b) => a * b))
                    throw new DataFormatException($"{data.LongLength} values for shape [{string.Join(", ", t.Dims)}]");
                return tensor(data, [.. t.Dims]);
            }
            catch (DataFormatException e)
            {
                throw Misfit(index, $"its tensor '{t.Name}' cannot be read: {e.Message}");
            }
        }

        /// <summary>One unit's tensors under our names; returns whether its BatchNorm was folded into the
        /// Conv.</summary>
        public bool Emit(Unit unit, string conv, string bn, Dictionary<string, Tensor> into)
        {
            into[conv + ".weight"] = ToTensor(unit.Conv.Input[1], unit.ConvIndex);
            using var bias = unit.Conv.Input.Count > 2 && unit.Conv.Input[2].Length > 0 ? ToTensor(unit.Conv.Input[2],
                unit.ConvIndex) : null;
            long c = unit.OutChannels;
            if (unit.Norm is { } n)
            {
                int ni = producers[n.Output[0]].Index;
                double eps = Attr(n, "epsilon")?.F ?? 1e-5;
                into[bn + ".weight"] = ToTensor(n.Input[1], ni);
                into[bn + ".bias"] = ToTensor(n.Input[2], ni);
                var mean = ToTensor(n.Input[3], ni);
                // BN(Wx + b) with mean m is BN'(Wx) with mean m - b; another eps moves into the variance.
                into[bn + ".running_mean"] = bias is null ? mean : mean.sub(bias).DetachFromDisposeScope();
                if (bias is not null) mean.Dispose();
                var variance = ToTensor(n.Input[4], ni);
                // A smaller eps than ours could make the variance negative: clamped at 0 (then ours alone remains).
                into[bn + ".running_var"] = Math.Abs(eps - OurEps) < 1e-12 ? variance :
                    variance.add(eps - OurEps).clamp_min_(0).DetachFromDisposeScope();
                if (Math.Abs(eps - OurEps) >= 1e-12) variance.Dispose();
                return false;
            }
            // Folded: an identity BatchNorm (mean 0, var 1, weight sqrt(1 + eps)) whose bias is the conv's.
            into[bn + ".weight"] = full([c], Math.Sqrt(1 + OurEps), ScalarType.Float32);
            into[bn + ".bias"] = bias is null ? zeros(c) : bias.clone();
            into[bn + ".running_mean"] = zeros(c);
            into[bn + ".running_var"] = ones(c);
            return true;
        }
    }

    internal static string Describe(int[] blocks) => string.Join(", ",
        blocks.Select(b => b.ToString(CultureInfo.InvariantCulture)));
}
