using System.Text.Json.Serialization;
using H2T.Data;
using H2T.Losses;
using H2T.Models;

namespace H2T.Training;

/// <summary>SGD settings (the reference's).</summary>
public sealed record OptimConfig(double Lr = 0.1, double Momentum = 0.9, double WeightDecay = 2e-4, bool Nesterov = false, int BatchSize = 128)
{
    public void Validate(string prefix = "")
    {
        if (!(Lr > 0)) throw new ConfigException($"{prefix}lr must be > 0, got {Lr}");
        if (Momentum is < 0 or >= 1) throw new ConfigException($"{prefix}momentum must lie in [0, 1), got {Momentum}");
        if (WeightDecay < 0) throw new ConfigException($"{prefix}weight_decay must be >= 0, got {WeightDecay}");
        if (BatchSize < 1) throw new ConfigException($"{prefix}batch_size must be >= 1, got {BatchSize}");
        if (Nesterov && Momentum == 0) throw new ConfigException($"{prefix}nesterov needs momentum > 0");
    }
}

[JsonConverter(typeof(JsonStringEnumConverter<ScheduleKind>))]
public enum ScheduleKind { Cosine, MultiStep, Constant }

/// <summary>Schedule names (the reference's 'cos' and 'step' included), for --schedule and lr_scheduler.type alike.</summary>
public static class ScheduleKinds
{
    public static NameTable<ScheduleKind> Table { get; } = new("schedule",
    [
        ("cosine", ScheduleKind.Cosine), ("cos", ScheduleKind.Cosine),
        ("multistep", ScheduleKind.MultiStep), ("step", ScheduleKind.MultiStep), ("warmup", ScheduleKind.MultiStep),
        ("constant", ScheduleKind.Constant), ("none", ScheduleKind.Constant),
    ], "cosine (cos), multistep (step, with milestones) or constant");
}

/// <summary>
/// Learning-rate schedule, applied per epoch as the reference does: cosine from the peak to <see cref="MinLr"/>,
/// or multistep (x gamma at each milestone) with linear warm-up over the first epochs, or constant.
/// </summary>
public sealed record ScheduleConfig(ScheduleKind Kind = ScheduleKind.Cosine, int WarmupEpochs = 0, int[]? Milestones = null, double Gamma = 0.1, double MinLr = 0)
{
    public void Validate()
    {
        if (WarmupEpochs < 0) throw new ConfigException($"warmup must be >= 0 epochs, got {WarmupEpochs}");
        if (Kind == ScheduleKind.MultiStep && (Milestones is null || Milestones.Length == 0))
            throw new ConfigException("schedule multistep needs milestones (e.g. --milestones 160,180)");
        if (Milestones is { } ms && ms.Any(m => m < 1)) throw new ConfigException($"milestones must be epochs >= 1, got {string.Join(",", ms)}");
        if (!(Gamma > 0)) throw new ConfigException($"gamma must be > 0, got {Gamma}");
    }

    public double LrAt(double peak, int epoch, int totalEpochs)
    {
        if (epoch < WarmupEpochs) return peak * (epoch + 1) / WarmupEpochs;
        return Kind switch
        {
            ScheduleKind.Cosine => MinLr + 0.5 * (peak - MinLr) * (1 + Math.Cos(Math.PI * epoch / totalEpochs)),
            ScheduleKind.MultiStep => peak * Math.Pow(Gamma, (Milestones ?? []).Count(m => epoch >= m)),
            _ => peak,
        };
    }
}

/// <summary>Stage I: learn backbone + classifier on the long-tailed set.</summary>
public sealed record StageOneConfig
{
    public DataConfig Data { get; init; } = new();
    public string Backbone { get; init; } = "resnet32";
    public string Classifier { get; init; } = "linear";
    public int Epochs { get; init; } = 30;
    public OptimConfig Optim { get; init; } = new();
    public ScheduleConfig Schedule { get; init; } = new();
    public LossConfig Loss { get; init; } = new();
    /// <summary>Mixup alpha; 0 turns mixup off.</summary>
    public double MixupAlpha { get; init; } = 1.0;
    public string Sampler { get; init; } = "instance";
    /// <summary>CMO: CutMix with minority images from an inverse-frequency sampler (null: off).</summary>
    public CmoConfig? Cmo { get; init; }
    public int Seed { get; init; } = 0;
    /// <summary>Batches assembled ahead on a background thread (0: on the training thread).</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>Evaluate on the test set every N epochs (the last epoch always); 0: only the last.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>A torch.save file whose weights initialise the backbone (a torchvision state dict, or any layout
    /// <c>h2t import</c> reads); the classifier starts fresh for the dataset's classes. Null: random init.</summary>
    public string? Pretrained { get; init; }
    /// <summary>Backbone modules that train (e.g. ["layer4.2"]); the others are frozen, their BatchNorm in eval mode.
    /// Null: the whole backbone trains. The classifier always trains.</summary>
    public string[]? Trainable { get; init; }
    /// <summary>The backbone's arithmetic (<see cref="MixedPrecision"/>); weights and checkpoints stay fp32.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;

    public bool ShouldEvaluate(int epoch) => RunChecks.ShouldEvaluate(epoch, Epochs, EvalEvery);

    public void Validate()
    {
        RunChecks.Validate(Epochs, EvalEvery, Prefetch, Optim, Schedule, Loss);
        if (Trainable is { Length: 0 }) throw new ConfigException("trainable: name at least one backbone module (or leave it out to train the whole backbone)");
        if (!(MixupAlpha >= 0)) throw new ConfigException($"mixup alpha must be >= 0, got {MixupAlpha}");
        if (Cmo is { } cmo)
        {
            try { cmo.Validate(); }
            catch (ArgumentException e) { throw new ConfigException(e.Message); }
            if (MixupAlpha > 0 && cmo.Probability > 0) throw new ConfigException("cmo and mixup are exclusive: set mixup alpha 0 with CMO (its CutMix replaces mixup)");
        }
        if (!Samplers.Names.Contains(Sampler)) throw new ConfigException($"unknown sampler '{Sampler}'; expected one of: {string.Join(", ", Samplers.Names)}");
        if (!Models.ModelFactory.BackboneNames.Contains(Backbone, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException($"unknown backbone '{Backbone}'; expected one of: {string.Join(", ", Models.ModelFactory.BackboneNames)}");
        if (!Models.ModelFactory.HeadNames.Contains(Classifier, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException($"unknown classifier '{Classifier}'; expected one of: {string.Join(", ", Models.ModelFactory.HeadNames)}");
    }
}

/// <summary>Stage II: frozen backbone, classifier re-training with H2T fusion (rho = 0: plain re-balancing).</summary>
public sealed record StageTwoConfig
{
    public int Epochs { get; init; } = 10;
    public OptimConfig Optim { get; init; } = new(Lr: 0.1, WeightDecay: 5e-4);
    /// <summary>The classifier group's lr is Optim.Lr x LrFactor (reference: 0.1 x 0.2 = 0.02 peak).</summary>
    public double LrFactor { get; init; } = 0.2;
    public ScheduleConfig Schedule { get; init; } = new();
    public LossConfig Loss { get; init; } = new();
    public double Rho { get; init; } = 0.25;
    /// <summary>Tail side sampler: balanced (class-balanced) or reverse (inverse frequency).</summary>
    public string TailSampler { get; init; } = "balanced";
    public string HeadSampler { get; init; } = "instance";
    /// <summary>Run the frozen backbone in train mode so BatchNorm statistics adapt (weights never change).</summary>
    public bool ShiftBn { get; init; } = true;
    /// <summary>Re-initialise the classifier instead of fine-tuning the stage-I one.</summary>
    public bool ReinitClassifier { get; init; }
    /// <summary>"keep" (the stage-I classifier kind) or "lws": Decouple's learnable weight scaling on the stage-I linear
    /// classifier (its weights frozen, one scale per class learnt).</summary>
    public string Classifier { get; init; } = "keep";
    public int Seed { get; init; } = 0;
    /// <summary>Batches assembled ahead on a background thread (0: on the training thread).</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>Evaluate on the test set every N epochs (the last epoch always); 0: only the last.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>The backbone's arithmetic (<see cref="MixedPrecision"/>); weights and checkpoints stay fp32.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;

    public bool ShouldEvaluate(int epoch) => RunChecks.ShouldEvaluate(epoch, Epochs, EvalEvery);

    public void Validate()
    {
        RunChecks.Validate(Epochs, EvalEvery, Prefetch, Optim, Schedule, Loss);
        if (Rho is < 0 or > 1 || double.IsNaN(Rho)) throw new ConfigException($"rho must lie in [0, 1], got {Rho}");
        if (!(LrFactor > 0)) throw new ConfigException($"lr_factor must be > 0, got {LrFactor}");
        if (Classifier is not ("keep" or "lws")) throw new ConfigException($"stage-2 classifier must be keep or lws, got '{Classifier}'");
        if (Classifier == "lws" && ReinitClassifier) throw new ConfigException("lws re-scales the stage-I classifier: it cannot be combined with reinit");
        var tails = Samplers.Names;
        if (!tails.Contains(TailSampler)) throw new ConfigException($"unknown tail sampler '{TailSampler}'; expected one of: {string.Join(", ", tails)}");
        if (!tails.Contains(HeadSampler)) throw new ConfigException($"unknown head sampler '{HeadSampler}'; expected one of: {string.Join(", ", tails)}");
    }
}

/// <summary>Checks both stages share.</summary>
internal static class RunChecks
{
    /// <summary>Every <paramref name="evalEvery"/> epochs (0: never early), and always after the last.</summary>
    public static bool ShouldEvaluate(int epoch, int epochs, int evalEvery) =>
        epoch == epochs - 1 || (evalEvery > 0 && (epoch + 1) % evalEvery == 0);

    public static void Validate(int epochs, int evalEvery, int prefetch, OptimConfig optim, ScheduleConfig schedule, LossConfig loss)
    {
        if (epochs < 1) throw new ConfigException($"epochs must be >= 1, got {epochs}");
        if (evalEvery < 0) throw new ConfigException($"eval_every must be >= 0, got {evalEvery}");
        if (prefetch < 0) throw new ConfigException($"prefetch must be >= 0, got {prefetch}");
        optim.Validate();
        schedule.Validate();
        if (!LossFactory.Names.Contains(loss.Type, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException($"unknown loss '{loss.Type}'; expected one of: {string.Join(", ", LossFactory.Names)}");
    }
}

/// <summary>An invalid setting: the message names the key and what was expected.</summary>
public class ConfigException(string message) : Exception(message);
