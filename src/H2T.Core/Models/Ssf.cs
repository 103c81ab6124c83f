using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Models;

public abstract partial class Backbone
{
    SsfModules? ssf;
    readonly List<Action> ssfHooks = [];

    /// <summary>The tuning whose modules this backbone carries (null: none, or merged away); checkpoints record it
    /// so a tuned run's weights load into the same structure.</summary>
    public TuningState? TuningState { get; internal set; }

    /// <summary>
    /// SSF (<see cref="TuningKind.Ssf"/>): a per-channel scale (starting at 1) and shift (at 0) after every
    /// BatchNorm, LayerNorm and biased Linear layer, applied by forward hooks. The layers' own weights are untouched
    /// until <see cref="MergeTuning"/> folds the scales and shifts into them.
    /// </summary>
    internal void AttachSsf()
    {
        if (ssf is not null) return;
        if (!SupportsSsf)
            throw new ConfigException(
                $"tuning ssf: built for the ResNets here; {Architecture} computes its norms and linear layers without "
                    +
                "their modules' forward, which SSF's hooks need (bias, norm or, on a ViT, adaptformer, lora, vpt)",
                "tuning");
        var targets = named_modules().Where(m => m.module is BatchNorm or LayerNorm || m.module is Linear
            { bias: not null }).Select(m => (m.name, m.module)).ToList();
        ssf = new SsfModules(targets.Select(t => (t.name, Width(t.module))).ToList());
        register_module(Tuning.ModulePrefix + "ssf", ssf);
        foreach (var (name, module) in targets)
        {
            var affine = ssf[name];
            bool channelsFirst = module is BatchNorm;
            var remover = ((nn.Module<Tensor, Tensor>)module).register_forward_hook((_, _, y) =>
                affine.Apply(y, channelsFirst));
            ssfHooks.Add(remover.remove);
        }
    }

    /// <summary>Folds the architecture's own mergeable tuning modules (a ViT's LoRA) into its weights; whether it
    /// did. The modules stay registered: <see cref="Tuning.Merged"/> copies the weights into a plain
    /// backbone.</summary>
    protected virtual bool MergeOwnTuning() => false;

    /// <summary>Whether SSF's hooks see every layer's output: the architecture calls its BatchNorm layers as modules
    /// in every precision (the ResNets).</summary>
    protected internal virtual bool SupportsSsf => false;

    static long Width(nn.Module m) => m switch
    {
        BatchNorm bn => bn.weight!.shape[0],
        LayerNorm ln => ln.weight!.shape[^1],
        Linear l => l.weight.shape[0],
        _ => throw new InvalidOperationException(m.GetName()),
    };

    /// <summary>
    /// Folds mergeable tuning modules into the layers they follow (SSF's scale and shift into the norm's affine or
    /// the linear layer's weight and bias) and removes their hooks; the emptied modules stay registered, so callers
    /// copy the weights into a plain backbone (<see cref="Tuning.Merged"/>). Returns whether anything was merged.
    /// </summary>
    internal bool MergeTuning()
    {
        if (ssf is null)
        {
            if (!MergeOwnTuning()) return false;
            TuningState = null;
            return true;
        }
        using (no_grad())
        {
            var modules = named_modules().ToDictionary(m => m.name, m => m.module);
            foreach (var (target, affine) in ssf.Entries)
            {
                var (weight, bias) = modules[target] switch
                {
                    BatchNorm bn => (bn.weight!, bn.bias!),
                    LayerNorm ln => (ln.weight!, ln.bias!),
                    Linear l => (l.weight, l.bias!),
                    var m => throw new InvalidOperationException(m.GetName()),
                };
                var scale = affine.Scale.detach();
                if (weight.dim() == 2) weight.mul_(scale.unsqueeze(1));
                else weight.mul_(scale);
                bias.mul_(scale).add_(affine.Shift.detach());
            }
        }
        foreach (var remove in ssfHooks) remove();
        ssfHooks.Clear();
        ssf = null;
        TuningState = null;
        return true;
    }
}

/// <summary>SSF's scales and shifts, one pair per target layer, registered under the backbone.</summary>
sealed class SsfModules : nn.Module
{
    readonly Dictionary<string, SsfAffine> byTarget = new(StringComparer.Ordinal);
    readonly ModuleDict<nn.Module> items = new();

    public SsfModules(IReadOnlyList<(string Target, long Width)> targets) : base("SsfModules")
    {
        foreach (var (target, width) in targets)
        {
            var a = new SsfAffine(width);
            byTarget[target] = a;
            // State-dict names may not contain dots; every target name here is a dotted module path.
            items.Add(target.Replace('.', '_'), a);
        }
        register_module("layers", items);
    }

    public SsfAffine this[string target] => byTarget[target];
    public IEnumerable<KeyValuePair<string, SsfAffine>> Entries => byTarget;
}

/// <summary>One layer's SSF scale and shift, applied along the channel axis (dim 1 for BatchNorm's N x C x ...
/// maps, the last dim for token and vector layers).</summary>
sealed class SsfAffine : nn.Module
{
    public Parameter Scale { get; }
    public Parameter Shift { get; }

    public SsfAffine(long width) : base("SsfAffine")
    {
        Scale = nn.Parameter(ones(width));
        Shift = nn.Parameter(zeros(width));
        register_parameter("scale", Scale);
        register_parameter("shift", Shift);
    }

    public Tensor Apply(Tensor y, bool channelsFirst)
    {
        var s = Scale.to(y.dtype);
        var t = Shift.to(y.dtype);
        if (channelsFirst && y.dim() > 2)
        {
            var shape = new long[y.dim()];
            Array.Fill(shape, 1L);
            shape[1] = -1;
            s = s.view(shape);
            t = t.view(shape);
        }
        return addcmul(t, y, s, 1);
    }
}
