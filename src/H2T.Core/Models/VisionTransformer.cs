using H2T.Settings;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>The MLP's activation: GELU (erf form; torchvision, timm, DINOv2) or CLIP's QuickGELU,
/// x * sigmoid(1.702 x), which OpenAI's CLIP towers were trained with.</summary>
public enum VitActivation
{
    /// <summary>GELU, erf form.</summary>
    Gelu,
    /// <summary>x * sigmoid(1.702 x).</summary>
    QuickGelu,
}

/// <summary>How a position-embedding grid is resampled to another grid: both bicubic over the patch grid with the
/// prefix tokens kept.</summary>
public enum PositionResampling
{
    /// <summary>torchvision's <c>interpolate_embeddings</c>: align_corners=True, no antialiasing.</summary>
    Torchvision,
    /// <summary>timm's <c>resample_abs_pos_embed</c> (OpenCLIP's <c>resize_pos_embed</c> too): align_corners=False,
    /// antialias=True.</summary>
    Timm,
}

/// <summary>
/// A Vision Transformer's shape and options. <see cref="Eps"/> is torchvision's and timm's 1e-6 or CLIP's 1e-5;
/// <see cref="PreNorm"/> is CLIP's <c>ln_pre</c> (a LayerNorm over the tokens before the first block);
/// <see cref="LayerScale"/> is DINOv2's per-channel scale of each residual branch (its init value);
/// <see cref="RegisterTokens"/> are DINOv2-with-registers' extra learnt tokens after the class token;
/// <see cref="NoEmbedClass"/>: the position embeddings cover the patches only (timm's no_embed_class, the register
/// models'); <see cref="PatchBias"/>: the patch projection has a bias (not in CLIP's towers).
/// </summary>
public sealed record VisionTransformerConfig(int Patch, int ImageSize, int Width, int Depth, int Heads, int MlpDim,
    bool PreNorm = false, VitActivation Activation = VitActivation.Gelu, double? LayerScale = null,
    int RegisterTokens = 0, double Eps = 1e-6, bool NoEmbedClass = false, bool PatchBias = true)
{
    /// <summary>Patches per side at <see cref="ImageSize"/>.</summary>
    public int Grid => ImageSize / Patch;

    /// <summary>Tokens before the patches: the class token and the registers.</summary>
    public int PrefixTokens => 1 + RegisterTokens;

    /// <summary>Rows of the position embedding: the patches, plus the class token unless
    /// <see cref="NoEmbedClass"/>.</summary>
    public int PositionRows => Grid * Grid + (NoEmbedClass ? 0 : 1);

    /// <summary>Throws naming the first value that cannot make a network.</summary>
    public void Validate()
    {
        if (Patch < 1 || ImageSize < Patch) throw new ArgumentException(
            $"ViT: patch {Patch} and image size {ImageSize} need 1 <= patch <= image size");
        if (Width < 1 || Depth < 1 || MlpDim < 1 || Heads < 1) throw new ArgumentException(
            $"ViT: width {Width}, depth {Depth}, heads {Heads} and mlp dim {MlpDim} must be positive");
        if (Width % Heads != 0) throw new ArgumentException($"ViT: width {Width} is not a multiple of {Heads} heads");
        if (RegisterTokens < 0) throw new ArgumentException($"ViT: {RegisterTokens} register tokens");
    }

    /// <summary>Whether the two configs make networks with the same tensors (names and shapes): what a weight file can
    /// tell. Heads, eps and the activation are not in a file; the image size is not either, since the position grid
    /// is resampled.</summary>
    public bool SameTensors(VisionTransformerConfig other) =>
        other is not null && Patch == other.Patch && Width == other.Width && Depth == other.Depth &&
        MlpDim == other.MlpDim && PreNorm == other.PreNorm && (LayerScale is null) == (other.LayerScale is null) &&
        RegisterTokens == other.RegisterTokens && NoEmbedClass == other.NoEmbedClass && PatchBias == other.PatchBias;
}

/// <summary>
/// A Vision Transformer backbone under torchvision 0.14's state-dict names (<c>conv_proj</c>, <c>class_token</c>,
/// <c>encoder.pos_embedding</c>, <c>encoder.layers.encoder_layer_{i}.{ln_1, self_attention, ln_2, mlp.0, mlp.3}</c>,
/// <c>encoder.ln</c>), so torchvision's weight files load by name; torchvision's <c>heads</c> is the classifier and is
/// not here. The options other producers need add tensors under names in the same style: <c>encoder.ln_pre</c>
/// (CLIP), <c>reg_token</c> (DINOv2 registers), <c>ls_1.gamma</c> / <c>ls_2.gamma</c> in each layer (layer scale).
/// <para>The forward returns the class token after the final LayerNorm as an N x C x 1 x 1 map: the heads' global
/// pooling is then the identity, and H2T's channel fusion applies to it as to a CNN's map. An input whose patch grid
/// differs from the built one gets the position embeddings resampled to it on the fly (timm's dynamic image size).
/// Dropout is 0. bf16 (<see cref="Backbone.Precision"/>) runs the patch projection, attention and MLP in bf16 on bf16
/// copies of the fp32 weights and the LayerNorms in fp32; channels-last only affects the patch projection, since
/// tokens are N x L x C whatever the layout.</para>
/// <para>For parameter-efficient fine-tuning each layer is its own named submodule (<see cref="Blocks"/>: attention,
/// MLP and norms apart), and <see cref="Embed"/> / <see cref="EncoderBlock"/> / <see cref="Tokens"/> give the token
/// sequence before, within and after the blocks.</para>
/// </summary>
public sealed class VisionTransformer : Backbone, ITokenTunable
{
    VisualPrompts? prompts;
    readonly Conv2d conv_proj;
    readonly Parameter class_token;
    readonly Parameter? reg_token;
    readonly Encoder encoder;
    readonly string arch;

    /// <summary>A ViT of <paramref name="config"/> for <paramref name="inChannels"/> input channels, registered under
    /// <paramref name="architecture"/>.</summary>
    public VisionTransformer(string architecture, VisionTransformerConfig config, int inChannels = 3)
        : base(architecture)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        arch = architecture;
        Config = config;
        conv_proj = Conv2d(inChannels, config.Width, config.Patch, stride: config.Patch, bias: config.PatchBias);
        class_token = new Parameter(zeros(1, 1, config.Width));
        if (config.RegisterTokens > 0) reg_token = new Parameter(zeros(1, config.RegisterTokens, config.Width));
        encoder = new Encoder(config);
        RegisterComponents();
        Initialise(inChannels);
    }

    /// <summary>The registered ViTs: torchvision's three, timm's tiny / small and its CLIP and DINOv2 towers, and
    /// vit_micro (patch 4 on 32 px, width 48, 2 layers of 3 heads: a few training steps in seconds, for CI).</summary>
    public static IReadOnlyDictionary<string, VisionTransformerConfig> Configs { get; } =
        new Dictionary<string, VisionTransformerConfig>(StringComparer.OrdinalIgnoreCase)
        {
            ["vit_b_16"] = new(16, 224, 768, 12, 12, 3072),
            ["vit_b_32"] = new(32, 224, 768, 12, 12, 3072),
            ["vit_l_16"] = new(16, 224, 1024, 24, 16, 4096),
            ["vit_micro"] = new(4, 32, 48, 2, 3, 96),
            ["vit_tiny_patch16_224"] = new(16, 224, 192, 12, 3, 768),
            ["vit_small_patch16_224"] = new(16, 224, 384, 12, 6, 1536),
            // CLIP's image tower as timm and OpenCLIP build it: ln_pre, eps 1e-5, no patch bias; OpenAI's weights were
            // trained with QuickGELU (timm's vit_base_patch16_clip_224 itself runs GELU).
            ["vit_base_patch16_clip_224"] = Clip(16),
            ["vit_base_patch16_clip_quickgelu_224"] = Clip(16) with { Activation = VitActivation.QuickGelu },
            ["vit_base_patch32_clip_224"] = Clip(32),
            ["vit_base_patch32_clip_quickgelu_224"] = Clip(32) with { Activation = VitActivation.QuickGelu },
            ["vit_small_patch14_dinov2"] = new(14, 518, 384, 12, 6, 1536, LayerScale: 1e-5),
            ["vit_small_patch14_reg4_dinov2"] = new(14, 518, 384, 12, 6, 1536, LayerScale: 1e-5, RegisterTokens: 4,
                NoEmbedClass: true),
        };

    static VisionTransformerConfig Clip(int patch) =>
        new(patch, 224, 768, 12, 12, 3072, PreNorm: true, Eps: 1e-5, PatchBias: false);

    /// <summary>The registered ViT <paramref name="arch"/> (<see cref="Configs"/>) for <paramref name="inChannels"/>
    /// input channels, built in <paramref name="compute"/>.</summary>
    public static VisionTransformer Build(string arch, int inChannels, BackboneCompute compute) =>
        Configs.TryGetValue(arch, out var c) ? new VisionTransformer(arch, c, inChannels) { Compute = compute }
            : throw new ArgumentException($"unknown Vision Transformer '{arch}'", nameof(arch));

    /// <summary>The shape and options this network was built with.</summary>
    public VisionTransformerConfig Config { get; }

    /// <summary>The encoder layers in order (<c>encoder.layers.encoder_layer_{i}</c>).</summary>
    public IReadOnlyList<EncoderBlock> Blocks => encoder.Blocks;

    /// <inheritdoc/>
    public int BlockCount => Blocks.Count;

    /// <inheritdoc/>
    public void AddTuningModules(TuningKind kind, int size)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "expected at least 1");
        switch (kind)
        {
            case TuningKind.AdaptFormer:
                var adapters = new ModuleList<AdaptFormerBranch>();
                foreach (var block in Blocks)
                {
                    block.Adapter = new AdaptFormerBranch(Config.Width, size, Config.Eps);
                    adapters.Add(block.Adapter);
                }
                register_module(Tuning.ModulePrefix + "adaptformer", adapters);
                break;
            case TuningKind.Lora:
                var loras = new ModuleList<LoraPair>();
                foreach (var block in Blocks)
                {
                    block.Attention.Lora = new LoraPair(Config.Width, size);
                    loras.Add(block.Attention.Lora);
                }
                register_module(Tuning.ModulePrefix + "lora", loras);
                break;
            case TuningKind.VptShallow or TuningKind.VptDeep:
                prompts = new VisualPrompts(kind == TuningKind.VptDeep ? Blocks.Count : 1, size, Config.Width,
                    Config.Patch);
                register_module(Tuning.ModulePrefix + "vpt", prompts);
                break;
            default:
                throw new ArgumentException($"tuning {TuningNames.Name(kind)} adds no token modules", nameof(kind));
        }
    }

    /// <summary>LoRA folds into the attention weights; AdaptFormer and VPT compute at run time.</summary>
    protected override bool MergeOwnTuning()
    {
        if (TuningState?.Kind != TuningKind.Lora) return false;
        foreach (var block in Blocks) block.Attention.MergeLora();
        return true;
    }

    public override int FeatureChannels => Config.Width;
    public override string Architecture => arch;

    void Initialise(int inChannels)
    {
        using var _ = no_grad();
        // torchvision's: patch projection truncated normal of std sqrt(1 / fan_in), zero bias and class token,
        // position embeddings N(0, 0.02) as BERT's, attention and MLP xavier-uniform.
        init.trunc_normal_(conv_proj.weight!, std: Math.Sqrt(1.0 / (inChannels * Config.Patch * Config.Patch)));
        if (conv_proj.bias is { } b) init.zeros_(b);
        encoder.pos_embedding.normal_(0, 0.02);
        reg_token?.normal_(0, 1e-6);
        foreach (var block in Blocks) block.Initialise();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var tokens = Tokens(x);
        var cls = tokens.select(1, 0);
        return Output(cls.reshape(cls.shape[0], cls.shape[1], 1, 1).contiguous()).MoveToOuterDisposeScope();
    }

    /// <summary>Every token after the final LayerNorm, N x L x C (class token first, then registers, then patches),
    /// in the forward's precision.</summary>
    public Tensor Tokens(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = Embed(images);
        long sequence = x.shape[1];
        for (int i = 0; i < Blocks.Count; i++)
        {
            if (prompts is not null && i < prompts.Layers) x = prompts.Insert(x, sequence, i);
            x = Blocks[i].call(x);
        }
        return encoder.ln.Apply(x).MoveToOuterDisposeScope();
    }

    /// <summary>The token sequence the first layer takes: patches projected, class token (and registers) prepended,
    /// position embeddings added (resampled when the input's grid is not the built one), CLIP's ln_pre
    /// applied.</summary>
    public Tensor Embed(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var p = Stem(c => MixedPrecision.Conv(conv_proj, c), images);
        long n = p.shape[0], gh = p.shape[2], gw = p.shape[3];
        var patches = p.flatten(2).transpose(1, 2);
        var type = patches.dtype;
        Tensor pos = encoder.pos_embedding;
        if (gh != Config.Grid || gw != Config.Grid)
            pos = ResamplePositions(pos, Config.NoEmbedClass ? 0 : 1, (Config.Grid, Config.Grid), ((int)gh, (int)gw),
                PositionResampling.Timm);
        pos = pos.to(type);
        var prefix = new List<Tensor> { class_token.to(type).expand(n, -1, -1) };
        if (reg_token is not null) prefix.Add(reg_token.to(type).expand(n, -1, -1));
        Tensor x;
        if (Config.NoEmbedClass) x = cat([.. prefix, patches + pos], 1);
        else x = cat([.. prefix, patches], 1) + pos;
        if (encoder.ln_pre is { } pre) x = pre.Apply(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Position embeddings 1 x (prefix + oldH * oldW) x C resampled to <paramref name="to"/>: bicubic over the patch
    /// grid, the <paramref name="prefix"/> rows (class token) kept, in <paramref name="style"/>'s corners and
    /// antialiasing. Computed in fp32.
    /// </summary>
    public static Tensor ResamplePositions(Tensor positions, int prefix, (int H, int W) from, (int H, int W) to,
        PositionResampling style)
    {
        ArgumentNullException.ThrowIfNull(positions);
        using var scope = NewDisposeScope();
        if (positions.dim() != 3 || positions.shape[0] != 1 || positions.shape[1] != prefix + from.H * from.W)
            throw new ArgumentException(
                $"position embeddings [{string.Join(", ", positions.shape)}] are not 1 x ({prefix} + {from.H} x " +
                $"{from.W}) x C");
        long c = positions.shape[2];
        var head = positions.narrow(1, 0, prefix);
        var grid = positions.narrow(1, prefix, from.H * from.W).to(ScalarType.Float32)
            .reshape(1, from.H, from.W, c).permute(0, 3, 1, 2);
        var resized = style == PositionResampling.Torchvision
            ? functional.interpolate(grid, [to.H, to.W], mode: InterpolationMode.Bicubic, align_corners: true)
            : functional.interpolate(grid, [to.H, to.W], mode: InterpolationMode.Bicubic, align_corners: false,
                antialias: true);
        var rows = resized.permute(0, 2, 3, 1).reshape(1, to.H * to.W, c).to(positions.dtype);
        return cat([head, rows], 1).MoveToOuterDisposeScope();
    }

    /// <summary>A linear layer in the input's precision (bf16 on a bf16 copy of the fp32 weight).</summary>
    internal static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (x.dtype == weight.dtype) return functional.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        return functional.linear(x, weight.to(x.dtype), bias?.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary><c>encoder</c>: position embeddings, CLIP's ln_pre, the layers, the final LayerNorm.</summary>
    sealed class Encoder : Module
    {
        public readonly Parameter pos_embedding;
        public readonly Norm? ln_pre;
        readonly Layers layers;
        public readonly Norm ln;

        public Encoder(VisionTransformerConfig config) : base("Encoder")
        {
            pos_embedding = new Parameter(zeros(1, config.PositionRows, config.Width));
            if (config.PreNorm) ln_pre = new Norm(config.Width, config.Eps);
            // torchvision names its layers encoder_layer_{i} (an OrderedDict in a Sequential), not 0, 1, ...
            layers = new Layers();
            var blocks = new EncoderBlock[config.Depth];
            for (int i = 0; i < config.Depth; i++)
            {
                blocks[i] = new EncoderBlock(config);
                layers.register_module($"encoder_layer_{i}", blocks[i]);
            }
            Blocks = blocks;
            ln = new Norm(config.Width, config.Eps);
            RegisterComponents();
        }

        public IReadOnlyList<EncoderBlock> Blocks { get; }
    }

    /// <summary><c>encoder.layers</c>: a container of the named layers.</summary>
    sealed class Layers() : Module("Sequential");
}

/// <summary>A LayerNorm computed in fp32 whatever the input's precision, the result in the input's
/// (weight, bias).</summary>
public sealed class Norm : Module
{
    readonly Parameter weight, bias;
    readonly double eps;

    /// <summary>A LayerNorm over <paramref name="width"/> channels.</summary>
    public Norm(int width, double eps) : base("LayerNorm")
    {
        this.eps = eps;
        weight = new Parameter(ones(width));
        bias = new Parameter(zeros(width));
        RegisterComponents();
    }

    /// <summary>Normalises the last dimension.</summary>
    public Tensor Apply(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dtype == ScalarType.Float32) return functional.layer_norm(x, [x.shape[^1]], weight, bias, eps);
        using var scope = NewDisposeScope();
        return functional.layer_norm(x.to(ScalarType.Float32), [x.shape[^1]], weight, bias, eps).to(x.dtype)
            .MoveToOuterDisposeScope();
    }
}

/// <summary>
/// One encoder layer: x + ls_1(attention(ln_1(x))), then + ls_2(mlp(ln_2(x))). Each part is a named submodule
/// (<see cref="Attention"/>, <see cref="Mlp"/>, <see cref="Norm1"/>, <see cref="Norm2"/>) for PEFT to wrap.
/// </summary>
public sealed class EncoderBlock : Module<Tensor, Tensor>
{
    readonly Norm ln_1, ln_2;
    readonly SelfAttention self_attention;
    readonly MlpBlock mlp;
    readonly LayerScale? ls_1, ls_2;

    internal EncoderBlock(VisionTransformerConfig config) : base("EncoderBlock")
    {
        ln_1 = new Norm(config.Width, config.Eps);
        self_attention = new SelfAttention(config.Width, config.Heads);
        ln_2 = new Norm(config.Width, config.Eps);
        mlp = new MlpBlock(config.Width, config.MlpDim, config.Activation);
        if (config.LayerScale is { } g)
        {
            ls_1 = new LayerScale(config.Width, g);
            ls_2 = new LayerScale(config.Width, g);
        }
        RegisterComponents();
    }

    /// <summary>ln_1.</summary>
    public Norm Norm1 => ln_1;
    /// <summary>ln_2.</summary>
    public Norm Norm2 => ln_2;
    /// <summary>self_attention (torchvision's nn.MultiheadAttention names).</summary>
    public SelfAttention Attention => self_attention;
    /// <summary>mlp (mlp.0, the activation, mlp.3).</summary>
    public MlpBlock Mlp => mlp;

    internal void Initialise()
    {
        self_attention.Initialise();
        mlp.Initialise();
    }

    /// <summary>AdaptFormer's branch beside the MLP, when the ViT carries one (registered by the ViT, not
    /// here).</summary>
    internal AdaptFormerBranch? Adapter { get; set; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = self_attention.call(ln_1.Apply(x));
        if (ls_1 is not null) a = ls_1.Apply(a);
        x = x + a;
        var m = mlp.call(ln_2.Apply(x));
        if (ls_2 is not null) m = ls_2.Apply(m);
        if (Adapter is not null) m = m + Adapter.call(x);
        return (x + m).MoveToOuterDisposeScope();
    }
}

/// <summary>Per-channel scale of a residual branch (DINOv2's LayerScale; <c>gamma</c>).</summary>
public sealed class LayerScale : Module
{
    readonly Parameter gamma;

    internal LayerScale(int width, double init) : base("LayerScale")
    {
        gamma = new Parameter(full(width, init));
        RegisterComponents();
    }

    /// <summary>x * gamma.</summary>
    public Tensor Apply(Tensor x) => x * gamma.to(x.dtype);
}

/// <summary>Multi-head self-attention under nn.MultiheadAttention's names (in_proj_weight: q, k, v stacked;
/// in_proj_bias; out_proj), batched over heads with libtorch's scaled_dot_product_attention.</summary>
public sealed class SelfAttention : Module<Tensor, Tensor>
{
    readonly Parameter in_proj_weight, in_proj_bias;
    readonly Linear out_proj;
    readonly int heads;

    internal SelfAttention(int width, int heads) : base("SelfAttention")
    {
        this.heads = heads;
        in_proj_weight = new Parameter(empty(3 * width, width));
        in_proj_bias = new Parameter(zeros(3 * width));
        out_proj = nn.Linear(width, width);
        RegisterComponents();
    }

    /// <summary>Heads the width is split into.</summary>
    public int Heads => heads;

    /// <summary>LoRA's low-rank updates of q and v, when the ViT carries them (registered by the ViT).</summary>
    internal LoraPair? Lora { get; set; }

    /// <summary>Folds <see cref="Lora"/> into in_proj_weight and drops it.</summary>
    internal void MergeLora()
    {
        if (Lora is null) return;
        using (no_grad())
        {
            using var delta = Lora.WeightDelta();
            in_proj_weight.add_(delta);
        }
        Lora = null;
    }

    internal void Initialise()
    {
        using var _ = no_grad();
        init.xavier_uniform_(in_proj_weight);
        init.zeros_(in_proj_bias);
        init.zeros_(out_proj.bias!);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], l = x.shape[1], c = x.shape[2];
        var projected = VisionTransformer.Linear(x, in_proj_weight, in_proj_bias);
        if (Lora is not null) projected = projected + Lora.Delta(x);
        var qkv = projected.reshape(n, l, 3, heads, c / heads).permute(2, 0, 3, 1, 4);
        var o = functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
        o = o.transpose(1, 2).reshape(n, l, c);
        return VisionTransformer.Linear(o, out_proj.weight!, out_proj.bias).MoveToOuterDisposeScope();
    }
}

/// <summary>The MLP under torchvision's names: <c>mlp.0</c> (width to mlp dim), the activation, <c>mlp.3</c>
/// (back).</summary>
public sealed class MlpBlock : Module<Tensor, Tensor>
{
    // An array, not fields: fields would be registered under their own names besides torchvision's 0 and 3.
    readonly Linear[] fc;
    readonly VitActivation activation;

    internal MlpBlock(int width, int hidden, VitActivation activation) : base("MLPBlock")
    {
        this.activation = activation;
        fc = [nn.Linear(width, hidden), nn.Linear(hidden, width)];
        register_module("0", fc[0]);
        register_module("3", fc[1]);
    }

    /// <summary>The activation between the two layers.</summary>
    public VitActivation Activation => activation;

    internal void Initialise()
    {
        using var _ = no_grad();
        foreach (var l in fc)
        {
            init.xavier_uniform_(l.weight!);
            init.normal_(l.bias!, std: 1e-6);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = VisionTransformer.Linear(x, fc[0].weight!, fc[0].bias);
        h = activation == VitActivation.QuickGelu ? h * sigmoid(h * 1.702) : functional.gelu(h);
        return VisionTransformer.Linear(h, fc[1].weight!, fc[1].bias).MoveToOuterDisposeScope();
    }
}
