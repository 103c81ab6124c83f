using H2T.Evaluation;

namespace H2T.Runs;

/// <summary>One rho of a sweep at its final epoch, and at the epoch validation selects.</summary>
public sealed record SweepRow(double Rho, string RunFolder, EvaluationSummary? FinalValidation, EvaluationSummary? FinalTest,
    int SelectedEpoch, EvaluationSummary? SelectedValidation, EvaluationSummary? SelectedTest);

/// <summary>sweep.json: every rho, the rho validation selects (final epoch, validation top-1) and where its
/// checkpoint is, and what the sweep cost.</summary>
public sealed record SweepResult
{
    public const string FileName = "sweep.json";

    /// <summary>The sweep.json in a sweep's folder.</summary>
    public static string PathIn(string sweepFolder) => System.IO.Path.Combine(sweepFolder, FileName);

    public static SweepResult Read(string sweepFolder)
    {
        var file = PathIn(sweepFolder);
        try { return System.Text.Json.JsonSerializer.Deserialize<SweepResult>(File.ReadAllText(file), AtomicFile.Json) ?? new SweepResult(); }
        catch (System.Text.Json.JsonException e) { throw new H2T.Settings.ConfigException($"{file}: unreadable sweep ({e.Message})"); }
    }

    public void Write(string sweepFolder) => AtomicFile.WriteJson(PathIn(sweepFolder), this);

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
