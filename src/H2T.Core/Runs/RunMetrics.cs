using H2T.Evaluation;

namespace H2T.Runs;

/// <summary>One epoch's figures, as they go into metrics.json.</summary>
public sealed record EpochRecord(
    string Stage,
    int Epoch,
    double Lr,
    double TrainLoss,
    double TrainSeconds,
    double ImagesPerSecond,
    double EvalSeconds,
    EvaluationSummary? Test,
    EvaluationSummary? Validation = null,
    double ResidentMb = 0,
    double PeakResidentMb = 0);

/// <summary>EvaluationResult without the big arrays, for per-epoch logs.</summary>
public sealed record EvaluationSummary(double Top1, double Top5, double Head, double Medium, double Tail, double Ece,
    double Nll)
{
    public static EvaluationSummary From(EvaluationResult r) => new(r.Top1, r.Top5, r.Head, r.Medium, r.Tail, r.Ece,
        r.Nll);
}

/// <summary>metrics.json: every epoch, then the final evaluation (final epoch) and the best-on-test epoch,
/// labelled.</summary>
public sealed record RunMetrics
{
    public string Stage { get; init; } = "";
    public List<EpochRecord> Epochs { get; init; } = [];
    public EvaluationSummary? Final { get; init; }
    public int FinalEpoch { get; init; } = -1;
    /// <summary>Best test top-1 over epochs: optimistic (selected on the test set), reported beside, never
    /// instead.</summary>
    public EvaluationSummary? BestOnTest { get; init; }
    public int BestOnTestEpoch { get; init; } = -1;
    public double[]? FinalPerClassAccuracy { get; init; }
    /// <summary>Final-epoch validation figures, when the data has a validation split.</summary>
    public EvaluationSummary? FinalValidation { get; init; }
    /// <summary>The epoch with the best validation top-1 (the honest choice), and the test figures there.</summary>
    public int SelectedEpoch { get; init; } = -1;
    public EvaluationSummary? SelectedValidation { get; init; }
    public EvaluationSummary? SelectedTest { get; init; }
    public bool Completed { get; init; }
}
