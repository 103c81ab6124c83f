using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Models;

/// <summary>What <see cref="Tuning.Apply"/> did: the kind, the trainable and total parameter counts of the
/// backbone (elements, not tensors).</summary>
public sealed record TuningSummary(TuningKind Kind, long TrainableParameters, long TotalParameters, int Dim)
{
    /// <summary>Trainable share of the backbone, in percent.</summary>
    public double TrainablePercent => TotalParameters == 0 ? 0 : 100.0 * TrainableParameters / TotalParameters;

    /// <summary>The line runs print and log.</summary>
    public string Describe() =>
        $"tuning {TuningNames.Name(Kind)}{(Dim > 0 ? $" (dim {Dim})" : "")}: {TrainableParameters:N0} of " +
        $"{TotalParameters:N0} backbone parameters train " +
        $"({TrainablePercent.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)}%), plus the " +
        "classifier";
}

/// <summary>
/// A backbone that can carry the token-level modules of the ViT kinds (AdaptFormer, LoRA, VPT); CNNs do not.
/// </summary>
public interface ITokenTunable
{
    /// <summary>Transformer blocks (LIFT's default adapter width depends on them).</summary>
    int BlockCount { get; }

    /// <summary>Adds the kind's modules (registered under the backbone with names starting
    /// <see cref="Tuning.ModulePrefix"/>, so checkpoints save them and tuning finds them) with their width or rank or
    /// prompt count <paramref name="size"/>; freezes nothing.</summary>
    void AddTuningModules(TuningKind kind, int size);
}

/// <summary>The tuning kinds' one home: names, defaults, and how each is applied to a built backbone.</summary>
public static class Tuning
{
    /// <summary>
    /// The width / rank / prompt count a kind uses when none is given, LIFT's rules: 10 VPT prompts; an AdaptFormer
    /// bottleneck or LoRA rank of 2^max(0, floor(log2(classes / (2 x blocks)))), which is 32 for ImageNet-LT on a
    /// 12-block ViT and 1 for 10 classes; 0 for kinds without one.
    /// </summary>
    public static int DefaultDim(TuningKind kind, int numClasses, int blocks) => kind switch
    {
        TuningKind.AdaptFormer or TuningKind.Lora =>
            1 << Math.Max(0, (int)Math.Floor(Math.Log2(numClasses / (2.0 * Math.Max(1, blocks))))),
        TuningKind.VptShallow or TuningKind.VptDeep => 10,
        _ => 0,
    };

    /// <summary>
    /// Adds the kind's modules (SSF's scales and shifts, a ViT's adapters or prompts) to <paramref name="backbone"/>
    /// without freezing anything: what a checkpoint of a tuned run needs before its weights load. Returns the size
    /// used (<paramref name="dim"/>, or the kind's default for <paramref name="numClasses"/> when 0).
    /// </summary>
    public static int AddModules(Backbone backbone, TuningKind kind, int dim, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        if (kind == TuningKind.Full) return 0;
        if (kind == TuningKind.Ssf) backbone.AttachSsf();
        else if (TuningNames.NeedsTokens(kind))
        {
            if (backbone is not ITokenTunable tokens)
                throw new ConfigException(
                    $"tuning {TuningNames.Name(kind)} needs a ViT backbone; {backbone.Architecture} has no tokens " +
                        $"(for a CNN: " +
                    "full, frozen, bias, norm or ssf)", "tuning");
            if (dim <= 0) dim = DefaultDim(kind, numClasses, tokens.BlockCount);
            tokens.AddTuningModules(kind, dim);
        }
        // Frozen, bias and norm tuning add nothing: a plain backbone of the architecture loads their checkpoints.
        if (kind is TuningKind.Ssf || TuningNames.NeedsTokens(kind)) backbone.TuningState = new(kind, dim);
        return dim;
    }

    /// <summary>
    /// Sets up a training run's backbone for <paramref name="kind"/>: adds its modules, then freezes every backbone
    /// parameter outside the kind's trainable set. Call before moving the backbone to its device.
    /// </summary>
    public static TuningSummary Apply(Backbone backbone, TuningKind kind, int dim, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        dim = AddModules(backbone, kind, dim, numClasses);
        var norms = NormParameterNames(backbone);
        foreach (var (name, p) in backbone.named_parameters())
            p.requires_grad = kind switch
            {
                TuningKind.Full => true,
                TuningKind.Frozen => false,
                TuningKind.Bias => name.EndsWith("bias", StringComparison.Ordinal),
                TuningKind.Norm => norms.Contains(name),
                _ => IsTuningModule(name),
            };
        return Summarize(backbone, kind, dim);
    }

    /// <summary>
    /// The backbone for inference: <paramref name="tuned"/> itself when its tuning modules compute at run time (a
    /// ViT's adapters and prompts), else a plain backbone from <paramref name="makePlain"/> holding its weights with
    /// SSF folded in (then <paramref name="tuned"/> is disposed). Same outputs to float rounding, no hooks.
    /// </summary>
    public static Backbone Merged(Backbone tuned, Func<Backbone> makePlain)
    {
        ArgumentNullException.ThrowIfNull(tuned);
        ArgumentNullException.ThrowIfNull(makePlain);
        if (!tuned.MergeTuning()) return tuned;
        var plain = makePlain();
        try
        {
            var weights = tuned.state_dict().Where(kv => !IsTuningModule(kv.Key))
                .ToDictionary(kv => kv.Key, kv => kv.Value);
            plain.load_state_dict(weights, strict: true);
            tuned.Dispose();
            return plain;
        }
        catch
        {
            plain.Dispose();
            throw;
        }
    }

    /// <summary>The trainable and total parameter counts of a backbone as it stands.</summary>
    public static TuningSummary Summarize(Backbone backbone, TuningKind kind, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        long trainable = 0, total = 0;
        foreach (var p in backbone.parameters())
        {
            total += p.numel();
            if (p.requires_grad) trainable += p.numel();
        }
        return new(kind, trainable, total, dim);
    }

    /// <summary>Parameters of the modules a tuning kind adds: their names start with <see cref="ModulePrefix"/> or
    /// contain it after a dot.</summary>
    internal static bool IsTuningModule(string parameterName) =>
        parameterName.StartsWith(ModulePrefix, StringComparison.Ordinal) ||
        parameterName.Contains("." + ModulePrefix, StringComparison.Ordinal);

    /// <summary>The name every tuning module's registration starts with, so checkpoints and freezing find them.
    /// </summary>
    public const string ModulePrefix = "tune_";

    static HashSet<string> NormParameterNames(Backbone backbone)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, m) in backbone.named_modules())
            if (m is BatchNorm or LayerNorm or GroupNorm or Norm)
                foreach (var (p, _) in m.named_parameters(recurse: false))
                    names.Add(name.Length == 0 ? p : $"{name}.{p}");
        return names;
    }
}

/// <summary>The tuning a backbone carries modules for (recorded in checkpoints so they are rebuilt before
/// loading).</summary>
public sealed record TuningState(TuningKind Kind, int Dim);
