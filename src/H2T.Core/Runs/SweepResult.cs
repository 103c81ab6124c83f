using H2T.Evaluation;

namespace H2T.Runs;

/// <summary>One rho of a sweep at its final epoch, and at the epoch validation selects.</summary>
public sealed record SweepRow(double Rho, string RunFolder, EvaluationSummary? FinalValidation, EvaluationSummary? FinalTest,
    int SelectedEpoch, EvaluationSummary? SelectedValidation, EvaluationSummary? SelectedTest);

/// <summary>sweep.json: every rho, the rho validation selects (final epoch, validation top-1) and where its
/// checkpoint is, and what the sweep cost.</summary>
public sealed record SweepResult
{
    public List<SweepRow> Rows { get; init; } = [];
    public double? SelectedRho { get; init; }
    public string? SelectedCheckpoint { get; init; }
    public string SelectedBy { get; init; } = "";
    public string? ValidationNote { get; init; }
    public string? Dataset { get; init; }
    public string? From { get; init; }
    public int Epochs { get; init; }
    public double WallSeconds { get; init; }
    public double TrainSeconds { get; init; }
    public double EvalSeconds { get; init; }
}
