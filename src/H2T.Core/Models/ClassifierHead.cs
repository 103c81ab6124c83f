using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>Global average pooling + a classifier over the pooled feature. Input: a feature map N x C x H x W.</summary>
public abstract class ClassifierHead(string name, int inFeatures, int numClasses) : Module<Tensor, Tensor>(name)
{
    public int InFeatures { get; } = inFeatures;
    public int NumClasses { get; } = numClasses;
    public abstract string Kind { get; }

    public override Tensor forward(Tensor featureMap)
    {
        using var scope = NewDisposeScope();
        var pooled = featureMap.dim() == 4 ? featureMap.mean([2L, 3L]) : featureMap;
        return Logits(pooled).MoveToOuterDisposeScope();
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
        using (no_grad()) weight.copy_(functional.normalize(weight, dim: 0)); // unit-norm class vectors
        this.scale = scale;
        register_parameter("fc.weight", weight);
    }

    public override string Kind => "cosine";

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
