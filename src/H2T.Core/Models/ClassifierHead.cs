using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>Global average pooling + a classifier over the pooled feature. Input: a feature map N x C x H x
/// W.</summary>
public abstract class ClassifierHead(string name, int inFeatures, int numClasses) : Module<Tensor, Tensor>(name)
{
    public int InFeatures { get; } = inFeatures;
    public int NumClasses { get; } = numClasses;
    public abstract string Kind { get; }

    public override Tensor forward(Tensor featureMap)
    {
        using var scope = NewDisposeScope();
        return Logits(Pool(featureMap)).MoveToOuterDisposeScope();
    }

    /// <summary>Global average pooling of a map N x C x H x W; pooled features N x C pass as they are (an alias). Every
    /// head pools with this, and stage II's pooled features are made with it, so they are a head's own input.</summary>
    public static Tensor Pool(Tensor features)
    {
        ArgumentNullException.ThrowIfNull(features);
        return features.dim() == 4 ? features.mean([2L, 3L]) : features.alias();
    }

    /// <summary>Logits from pooled features N x C.</summary>
    public abstract Tensor Logits(Tensor pooled);

    /// <summary>Parameters stage II optimises (all, except for LWS which keeps the weights fixed).</summary>
    public virtual IEnumerable<Parameter> TrainableParameters() => parameters();
}

/// <summary>Plain linear classifier (state dict: fc.weight, fc.bias).</summary>
public sealed class LinearHead : ClassifierHead
{
    readonly Linear fc;

    public LinearHead(int inFeatures, int numClasses) : base("LinearHead", inFeatures, numClasses)
    {
        fc = Linear(inFeatures, numClasses);
        RegisterComponents();
        init.kaiming_normal_(fc.weight);
    }

    public override string Kind => "linear";
    public Linear Fc => fc;
    public override Tensor Logits(Tensor pooled) => fc.call(pooled);
}

/// <summary>
/// Cosine classifier (LDAM's NormedLinear): logits = scale * cos(feature, w_c). Losses that apply their own scale
/// (LDAM, GCL) use scale 1.
/// </summary>
public sealed class CosineHead : ClassifierHead
{
    readonly Parameter weight;
    readonly double scale;

    public CosineHead(int inFeatures, int numClasses, double scale = 1.0) : base("CosineHead", inFeatures, numClasses)
    {
        // Stored as in_features x classes, like the reference NormedLinear, so PyTorch checkpoints map 1:1.
        weight = Parameter(empty(inFeatures, numClasses));
        init.uniform_(weight, -1, 1);
        using (no_grad())
        {
            using var unit = functional.normalize(weight, dim: 0); // unit-norm class vectors
            weight.copy_(unit);
        }
        this.scale = scale;
        register_parameter("fc.weight", weight);
    }

    public override string Kind => "cosine";

    /// <summary>Sets the class vectors from <paramref name="classVectors"/> (classes x features; normalised
    /// here).</summary>
    public void SetClassVectors(Tensor classVectors)
    {
        ArgumentNullException.ThrowIfNull(classVectors);
        using var _ = no_grad();
        using var unit = functional.normalize(classVectors, dim: 1);
        using var t = unit.t();
        weight.copy_(t);
    }

    /// <summary>The factor on the cosines (1 unless a loss asked for another).</summary>
    public double Scale => scale;

    public override Tensor Logits(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        var cos = functional.normalize(pooled, dim: 1).mm(functional.normalize(weight, dim: 0));
        return (scale == 1.0 ? cos : cos * scale).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Learnable weight scaling (Decouple's LWS): a linear classifier whose weights stay fixed while one scale per class
/// is learnt. State dict: fc.weight, fc.bias, scales.
/// </summary>
public sealed class LwsHead : ClassifierHead
{
    readonly Linear fc;
    readonly Parameter scales;

    public LwsHead(int inFeatures, int numClasses) : base("LwsHead", inFeatures, numClasses)
    {
        fc = Linear(inFeatures, numClasses);
        scales = Parameter(ones(numClasses));
        RegisterComponents();
    }

    public override string Kind => "lws";
    public Linear Fc => fc;

    /// <summary>Copies a trained linear head's weights in (LWS re-scales an existing classifier).</summary>
    public void LoadFrom(LinearHead source)
    {
        using var _ = no_grad();
        fc.weight!.copy_(source.Fc.weight!);
        fc.bias!.copy_(source.Fc.bias!);
    }

    public override Tensor Logits(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        return (fc.call(pooled) * scales).MoveToOuterDisposeScope();
    }

    public override IEnumerable<Parameter> TrainableParameters() => [scales];
}

/// <summary>
/// A classifier over a multi-expert feature map: the map's channels are <see cref="Experts"/> equal groups (one per
/// expert or branch); each group is pooled and classified, giving N x E x K expert logits, and the head's output is
/// their combination. Multi-expert losses (RIDE, ResLT) train on the expert logits, every other loss on the output.
/// </summary>
public abstract class MultiExpertHead : ClassifierHead
{
    protected MultiExpertHead(string name, int inFeatures, int numClasses, int experts) : base(name, inFeatures,
        numClasses)
    {
        if (experts < 2) throw new ArgumentException($"a multi-expert head needs at least 2 experts, got {experts}");
        if (inFeatures % experts != 0) throw new ArgumentException(
            $"{inFeatures} feature channels do not split into {experts} experts");
        Experts = experts;
    }

    public int Experts { get; }

    /// <summary>Channels per expert.</summary>
    public int ExpertFeatures => InFeatures / Experts;

    /// <summary>Expert logits N x E x K from a feature map N x (E*C) x H x W or pooled features N x (E*C).</summary>
    public Tensor ExpertLogits(Tensor features)
    {
        using var scope = NewDisposeScope();
        return ExpertLogitsOfPooled(Pool(features)).MoveToOuterDisposeScope();
    }

    protected abstract Tensor ExpertLogitsOfPooled(Tensor pooled);

    /// <summary>The head's output from the expert logits N x E x K.</summary>
    public abstract Tensor Combine(Tensor expertLogits);

    public override Tensor Logits(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        return Combine(ExpertLogitsOfPooled(pooled)).MoveToOuterDisposeScope();
    }

    protected Tensor[] Groups(Tensor pooled)
    {
        if (pooled.dim() != 2 || pooled.shape[1] != InFeatures)
            throw new ArgumentException(
                $"expected pooled features N x {InFeatures}, got [{string.Join(", ", pooled.shape)}]");
        return pooled.chunk(Experts, 1);
    }
}

/// <summary>
/// RIDE's classifier: one normalised linear layer per expert (cosine logits times s = 30, as RIDE's model scales
/// them), output = the experts' mean. State dict: linears.{e}.weight (in x classes, as RIDE's NormedLinear).
/// </summary>
public sealed class RideHead : MultiExpertHead
{
    public const double Scale = 30;
    readonly Parameter[] weights;

    public RideHead(int inFeatures, int numClasses, int experts) : base("RideHead", inFeatures, numClasses, experts)
    {
        weights = new Parameter[experts];
        for (int e = 0; e < experts; e++)
        {
            var w = Parameter(empty(ExpertFeatures, numClasses));
            init.uniform_(w, -1, 1);
            using (no_grad())
            {
                using var unit = functional.normalize(w, dim: 0);
                w.copy_(unit);
            }
            weights[e] = w;
            register_parameter($"linears.{e}.weight", w);
        }
    }

    public override string Kind => "ride";

    protected override Tensor ExpertLogitsOfPooled(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        var groups = Groups(pooled);
        var logits = new Tensor[Experts];
        for (int e = 0; e < Experts; e++)
            logits[e] = functional.normalize(groups[e], dim: 1).mm(functional.normalize(weights[e], dim: 0)) * Scale;
        return stack(logits, 1).MoveToOuterDisposeScope();
    }

    public override Tensor Combine(Tensor expertLogits) => expertLogits.mean([1L]);
}

/// <summary>
/// ResLT's classifier: one linear layer shared by the head, medium and tail branches, output = the sum of the three
/// branch logits. State dict: fc.weight, fc.bias.
/// </summary>
public sealed class ResLtHead : MultiExpertHead
{
    readonly Linear fc;

    public ResLtHead(int inFeatures, int numClasses, int experts = 3) : base("ResLtHead", inFeatures, numClasses,
        experts)
    {
        fc = Linear(ExpertFeatures, numClasses);
        RegisterComponents();
        init.kaiming_normal_(fc.weight);
    }

    public override string Kind => "reslt";

    protected override Tensor ExpertLogitsOfPooled(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        return stack(Groups(pooled).Select(g => fc.call(g)).ToArray(), 1).MoveToOuterDisposeScope();
    }

    public override Tensor Combine(Tensor expertLogits) => expertLogits.sum([1L]);
}
