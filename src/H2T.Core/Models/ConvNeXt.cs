using System.Globalization;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>
/// ConvNeXt (Liu et al., CVPR 2022) in torchvision 0.14's layout, so its state dicts load by name: <c>features.0</c>
/// the stem (4x4 stride-4 conv, LayerNorm2d), <c>features.1, 3, 5, 7</c> the stages of CNBlocks (<c>block.0</c>
/// depthwise 7x7, <c>block.2</c> LayerNorm, <c>block.3</c> / <c>block.5</c> the MLP, <c>layer_scale</c>),
/// <c>features.2, 4, 6</c> the downsampling layers (LayerNorm2d, 2x2 stride-2 conv) and <c>classifier.0</c> the final
/// LayerNorm2d; torchvision's <c>classifier.2</c> (the Linear) is our head.
/// <para>torchvision applies the final norm after average pooling, and a LayerNorm does not commute with pooling. So
/// the map this backbone returns is the last stage's map M normalised with the statistics of its own pooled vector
/// p = mean_hw(M): (M - mean_c(p)) / sqrt(var_c(p) + eps) * gamma + beta, one affine map per sample and channel, the
/// same at every position. Its spatial mean is exactly LayerNorm(p), torchvision's input to the Linear, so every head
/// (which pools) gives torchvision's logits; H2T grafts channels of this map, i.e. of the classifier's normalised
/// input, as it grafts a ResNet's pooled features unchanged into its fc. <see cref="ForwardFeatures"/> gives M.</para>
/// </summary>
public sealed class ConvNeXt : Backbone
{
    const double Eps = 1e-6; // torchvision builds every ConvNeXt norm with eps 1e-6

    readonly Sequential features;
    readonly Sequential classifier;
    // The same layers typed, in a record so RegisterComponents does not register them a second time.
    readonly Layers layers;
    readonly string arch;
    readonly int featureChannels;
    double stochasticDepth;

    sealed record Layers(Conv2d StemConv, LayerNorm StemNorm, Block[][] Stages, (LayerNorm Norm, Conv2d Conv)?[]
        Downsampling, LayerNorm FinalNorm);

    /// <summary>An architecture's widths, depths and torchvision's default stochastic-depth probability.</summary>
    sealed record Layout(int[] Dims, int[] Depths, double StochasticDepth);

    static readonly Dictionary<string, Layout> Layouts = new(StringComparer.Ordinal)
    {
        ["convnext_tiny"] = new([96, 192, 384, 768], [3, 3, 9, 3], 0.1),
        ["convnext_small"] = new([96, 192, 384, 768], [3, 3, 27, 3], 0.4),
        ["convnext_base"] = new([128, 256, 512, 1024], [3, 3, 27, 3], 0.5),
        ["convnext_large"] = new([192, 384, 768, 1536], [3, 3, 27, 3], 0.5),
        // Not torchvision's: a random-init network small enough for CI (32-px inputs reach 1 x 1).
        ["convnext_micro"] = new([16, 32, 64, 128], [1, 1, 1, 1], 0.0),
    };

    /// <summary>The architectures <see cref="Build"/> knows.</summary>
    public static IReadOnlyList<string> Architectures => [.. Layouts.Keys];

    ConvNeXt(string arch, Layout layout, int inChannels) : base(arch)
    {
        this.arch = arch;
        var dims = layout.Dims;
        var stemConv = Conv2d(inChannels, dims[0], 4, stride: 4, bias: true);
        var stemNorm = LayerNorm(dims[0], eps: Eps);
        features = Sequential(("0", Sequential(("0", stemConv), ("1", stemNorm))));
        var stages = new Block[dims.Length][];
        var downsampling = new (LayerNorm, Conv2d)?[dims.Length];
        for (int s = 0; s < dims.Length; s++)
        {
            var stage = Sequential();
            stages[s] = new Block[layout.Depths[s]];
            for (int i = 0; i < layout.Depths[s]; i++)
            {
                stages[s][i] = new Block(dims[s]);
                stage.append(Name(i), stages[s][i]);
            }
            features.append(Name(features.Count), stage);
            if (s + 1 < dims.Length)
            {
                var norm = LayerNorm(dims[s], eps: Eps);
                var conv = Conv2d(dims[s], dims[s + 1], 2, stride: 2, bias: true);
                downsampling[s] = (norm, conv);
                features.append(Name(features.Count), Sequential(("0", norm), ("1", conv)));
            }
        }
        featureChannels = dims[^1];
        var finalNorm = LayerNorm(featureChannels, eps: Eps);
        classifier = Sequential(("0", finalNorm));
        layers = new(stemConv, stemNorm, stages, downsampling, finalNorm);
        RegisterComponents();
        // torchvision's init: trunc_normal_(std 0.02) weights of convolutions and linears, zero biases; LayerNorm 1 /
        // 0. Its cut at +-2 lies 100 standard deviations out, so a normal clamped there is the same distribution
        // (TorchSharp 0.107's trunc_normal_ left the weights at zero).
        using (no_grad())
            foreach (var (_, m) in named_modules())
            {
                var (w, b) = m switch
                {
                    Conv2d c => (c.weight, c.bias),
                    Linear l => (l.weight, l.bias),
                    _ => (null, null),
                };
                w?.normal_(0, 0.02).clamp_(-2, 2);
                b?.zero_();
            }
        StochasticDepth = layout.StochasticDepth;
    }

    static string Name(long i) => i.ToString(CultureInfo.InvariantCulture);

    /// <summary>The named ConvNeXt (<see cref="Architectures"/>) for <paramref name="inChannels"/> input channels,
    /// built in <paramref name="compute"/>, with torchvision's stochastic-depth probability for it.</summary>
    public static ConvNeXt Build(string arch, int inChannels, BackboneCompute compute) =>
        Layouts.TryGetValue(arch, out var layout) ? new ConvNeXt(arch, layout, inChannels) { Compute = compute }
            : throw new ArgumentException(
                $"unknown ConvNeXt '{arch}'; expected one of: {string.Join(", ", Layouts.Keys)}", nameof(arch));

    /// <summary>torchvision's default stochastic-depth probability for <paramref name="arch"/> (0.1 tiny, 0.4 small,
    /// 0.5 base and large).</summary>
    public static double DefaultStochasticDepth(string arch) => Layouts.TryGetValue(arch, out var l) ?
        l.StochasticDepth : throw new ArgumentException($"unknown ConvNeXt '{arch}'", nameof(arch));

    public override int FeatureChannels => featureChannels;
    public override string Architecture => arch;

    /// <summary>
    /// The stochastic-depth probability of the last block (torchvision's <c>stochastic_depth_prob</c>): block k of K
    /// drops its residual branch per sample with probability p * k / (K - 1), in training mode only. Set it before
    /// training; it changes no eval-mode output.
    /// </summary>
    public double StochasticDepth
    {
        get => stochasticDepth;
        set
        {
            if (double.IsNaN(value) || value < 0 || value > 1)
                throw new ArgumentOutOfRangeException(nameof(value), value,
                    "the stochastic-depth probability must lie in [0, 1]");
            stochasticDepth = value;
            var blocks = layers.Stages.SelectMany(s => s).ToArray();
            for (int k = 0; k < blocks.Length; k++)
                blocks[k].DropProbability = blocks.Length > 1 ? value * k / (blocks.Length - 1.0) : 0;
        }
    }

    /// <summary>Every block's drop probability, in order (torchvision's per-block <c>stochastic_depth.p</c>).</summary>
    public IReadOnlyList<double> BlockDropProbabilities => [.. layers.Stages.SelectMany(s => s).Select(b =>
        b.DropProbability)];

    /// <summary>torchvision's <c>features</c> output: the last stage's map, before the final norm.</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var (stemConv, stemNorm, stages, downsampling, _) = layers;
        var y = LayerNorm2d(stemNorm, Stem(c => MixedPrecision.Conv(stemConv, c), x));
        for (int s = 0; s < stages.Length; s++)
        {
            foreach (var b in stages[s]) y = b.call(y);
            if (downsampling[s] is var (norm, conv)) y = MixedPrecision.Conv(conv, LayerNorm2d(norm, y));
        }
        return Output(y).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return NormalizedByPooled(ForwardFeatures(x)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="map"/> normalised per sample with the mean and variance over channels of its pooled vector,
    /// then classifier.0's affine: mean_hw of the result is classifier.0 applied to mean_hw(map).
    /// </summary>
    public Tensor NormalizedByPooled(Tensor map)
    {
        ArgumentNullException.ThrowIfNull(map);
        using var scope = NewDisposeScope();
        var pooled = map.mean([2L, 3L], keepdim: true);
        var mu = pooled.mean([1L], keepdim: true);
        var rstd = pooled.var(1L, unbiased: false, keepdim: true).add_(Eps).rsqrt_();
        var gamma = layers.FinalNorm.weight!.to(map.dtype).view(1, -1, 1, 1);
        var beta = layers.FinalNorm.bias!.to(map.dtype).view(1, -1, 1, 1);
        return map.sub(mu).mul_(rstd.mul(gamma)).add_(beta).MoveToOuterDisposeScope();
    }

    /// <summary>torchvision's LayerNorm2d: a LayerNorm over the channels at every position.</summary>
    static Tensor LayerNorm2d(LayerNorm norm, Tensor x)
    {
        using var scope = NewDisposeScope();
        return ChannelNorm(norm, x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>A LayerNorm over the last dimension in the input's precision (a bf16 input gets bf16 copies of the
    /// fp32 weights, as <see cref="MixedPrecision.Conv"/> does).</summary>
    static Tensor ChannelNorm(LayerNorm norm, Tensor x)
    {
        if (x.dtype == norm.weight!.dtype) return norm.call(x);
        using var scope = NewDisposeScope();
        return functional.layer_norm(x, [x.shape[^1]], norm.weight.to(x.dtype), norm.bias!.to(x.dtype), Eps)
            .MoveToOuterDisposeScope();
    }

    static Tensor Dense(Linear fc, Tensor x)
    {
        if (x.dtype == fc.weight!.dtype) return fc.call(x);
        using var scope = NewDisposeScope();
        return functional.linear(x, fc.weight.to(x.dtype), fc.bias!.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>torchvision's CNBlock: x + drop(layer_scale * MLP(LN(dwconv7x7(x)))), the MLP in N x H x W x C
    /// (on a channels-last input the permutes are free).</summary>
    sealed class Block : Module<Tensor, Tensor>
    {
        readonly Sequential block;
        readonly Parameter layer_scale;
        readonly Parts parts;

        sealed record Parts(Conv2d Depthwise, LayerNorm Norm, Linear Expand, Linear Project);

        public Block(int dim) : base("CNBlock")
        {
            var depthwise = Conv2d(dim, dim, 7, padding: 3, groups: dim, bias: true);
            var norm = LayerNorm(dim, eps: Eps);
            var expand = Linear(dim, 4 * dim);
            var project = Linear(4 * dim, dim);
            parts = new(depthwise, norm, expand, project);
            // Index 1 and 4 are torchvision's Permute and GELU, 6 its Permute back: no parameters.
            block = Sequential(("0", depthwise), ("2", norm), ("3", expand), ("5", project));
            layer_scale = Parameter(full(dim, 1, 1, 1e-6));
            RegisterComponents();
        }

        public double DropProbability { get; set; }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var (depthwise, norm, expand, project) = parts;
            var y = MixedPrecision.Conv(depthwise, x).permute(0, 2, 3, 1);
            y = Dense(project, functional.gelu(Dense(expand, ChannelNorm(norm, y))));
            y = y.permute(0, 3, 1, 2).mul(layer_scale.to(y.dtype));
            if (training && DropProbability > 0)
            {
                // torchvision's StochasticDepth(p, "row"): one Bernoulli(1 - p) per sample, scaled by 1 / (1 - p).
                double survival = 1 - DropProbability;
                var keep = empty([y.shape[0], 1, 1, 1], dtype: y.dtype, device: y.device).bernoulli_(survival);
                if (survival > 0) keep.div_(survival);
                y = y.mul(keep);
            }
            return y.add_(x).MoveToOuterDisposeScope();
        }
    }
}
