using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>
/// AdaptFormer's branch (Chen et al., NeurIPS 2022) as LIFT builds it: its own LayerNorm, a bottleneck Linear, ReLU,
/// a Linear back up (zero at the start, so the network starts as the pretrained one) and a learnt scale (starting at
/// 1). It reads the MLP sub-layer's input and is added beside the MLP.
/// </summary>
public sealed class AdaptFormerBranch : Module<Tensor, Tensor>
{
    readonly Norm ln;
    readonly Linear down_proj, up_proj;
    readonly Parameter scale;

    internal AdaptFormerBranch(int width, int bottleneck, double eps) : base("AdaptFormer")
    {
        ln = new Norm(width, eps);
        down_proj = nn.Linear(width, bottleneck);
        up_proj = nn.Linear(bottleneck, width);
        scale = new Parameter(ones(1));
        using (no_grad())
        {
            // LIFT's init: kaiming_normal_(a = sqrt(5)) down, zeros up, zero biases.
            init.kaiming_normal_(down_proj.weight!, a: Math.Sqrt(5));
            init.zeros_(down_proj.bias!);
            init.zeros_(up_proj.weight!);
            init.zeros_(up_proj.bias!);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = VisionTransformer.Linear(ln.Apply(x), down_proj.weight!, down_proj.bias).relu();
        return (VisionTransformer.Linear(h, up_proj.weight!, up_proj.bias) * scale.to(x.dtype))
            .MoveToOuterDisposeScope();
    }
}

/// <summary>
/// LoRA (Hu et al., ICLR 2022) on the attention's query and value projections, as LIFT places it: q += x A_q B_q / r,
/// v += x A_v B_v / r, with A uniform in +-1/sqrt(r) and B zero at the start. A linear change of the stacked
/// projection, so it merges into <c>in_proj_weight</c> for inference.
/// </summary>
public sealed class LoraPair : Module
{
    readonly Parameter q_a, q_b, v_a, v_b;
    readonly int rank;

    internal LoraPair(int width, int rank) : base("LoRA")
    {
        this.rank = rank;
        double bound = 1 / Math.Sqrt(rank);
        q_a = new Parameter(empty(width, rank).uniform_(-bound, bound));
        v_a = new Parameter(empty(width, rank).uniform_(-bound, bound));
        q_b = new Parameter(zeros(rank, width));
        v_b = new Parameter(zeros(rank, width));
        RegisterComponents();
    }

    /// <summary>The change of the stacked q, k, v projection's output for input <paramref name="x"/> (N x L x C):
    /// N x L x 3C with zeros for k.</summary>
    public Tensor Delta(Tensor x)
    {
        using var scope = NewDisposeScope();
        var t = x.dtype;
        var dq = x.matmul(q_a.to(t)).matmul(q_b.to(t)) / rank;
        var dv = x.matmul(v_a.to(t)).matmul(v_b.to(t)) / rank;
        return cat([dq, zeros_like(dq), dv], -1).MoveToOuterDisposeScope();
    }

    /// <summary>The same change as a weight (3C x C) to add to <c>in_proj_weight</c>.</summary>
    public Tensor WeightDelta()
    {
        using var scope = NewDisposeScope();
        var dq = q_a.matmul(q_b).t() / rank;
        var dv = v_a.matmul(v_b).t() / rank;
        return cat([dq, zeros_like(dq), dv], 0).MoveToOuterDisposeScope();
    }
}

/// <summary>VPT's prompts (Jia et al., ECCV 2022) as LIFT inserts them: learnt tokens appended after the embedded
/// sequence (class token, registers, patches); deep: the previous layer's prompts are dropped and fresh ones appended
/// before every layer.</summary>
public sealed class VisualPrompts : Module
{
    readonly ParameterList prompts = new();

    internal VisualPrompts(int layers, int count, int width, int patch) : base("VPT")
    {
        // LIFT's init: uniform in +-sqrt(6 / (3 * patch^2 + width)).
        double bound = Math.Sqrt(6.0 / (3 * patch * patch + width));
        for (int i = 0; i < layers; i++) prompts.Add(new Parameter(empty(count, width).uniform_(-bound, bound)));
        register_module("prompts", prompts);
    }

    /// <summary>Layers that get fresh prompts (1: shallow).</summary>
    public int Layers => prompts.Count;

    /// <summary><paramref name="x"/>'s first <paramref name="sequence"/> tokens, then layer
    /// <paramref name="layer"/>'s prompts.</summary>
    public Tensor Insert(Tensor x, long sequence, int layer)
    {
        using var scope = NewDisposeScope();
        var p = prompts[layer].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1);
        return cat([x.narrow(1, 0, sequence), p], 1).MoveToOuterDisposeScope();
    }
}
