using System.Text.Json.Serialization;

namespace H2T.Settings;

[JsonConverter(typeof(JsonStringEnumConverter<ScheduleKind>))]
public enum ScheduleKind { Cosine, MultiStep, Constant }

/// <summary>Schedule names (the reference's 'cos' and 'step' included), for --schedule and lr_scheduler.type
/// alike.</summary>
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
public sealed record ScheduleConfig(ScheduleKind Kind = ScheduleKind.Cosine, int WarmupEpochs = 0,
    int[]? Milestones = null, double Gamma = 0.1, double MinLr = 0)
{
    public void Validate()
    {
        if (WarmupEpochs < 0) throw new ConfigException($"warmup must be >= 0 epochs, got {WarmupEpochs}",
            "lr_scheduler.warmup_epochs");
        if (Kind == ScheduleKind.MultiStep && (Milestones is null || Milestones.Length == 0))
            throw new ConfigException(
                "schedule multistep needs milestones (e.g. --milestones 160,180, or lr_scheduler.lr_step: [160, 180])",
                "lr_scheduler.type");
        if (Milestones is { } ms && ms.Any(m =>
            m < 1)) throw new ConfigException($"milestones must be epochs >= 1, got {string.Join(",", ms)}",
            "lr_scheduler.lr_step");
        if (!(Gamma > 0)) throw new ConfigException($"gamma must be > 0, got {Gamma}", "lr_scheduler.gamma");
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
