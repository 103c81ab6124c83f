using H2T.Evaluation;

namespace H2T.Runs;

/// <summary>One member of a sweep (its rho, and what else it varied) at its final epoch, and at the epoch validation
/// selects.</summary>
public sealed record SweepRow(double Rho, string RunFolder, EvaluationSummary? FinalValidation,
    EvaluationSummary? FinalTest,
    int SelectedEpoch, EvaluationSummary? SelectedValidation, EvaluationSummary? SelectedTest)
{
    /// <summary>The member's name: its swept settings as key=value (a sweep.json written before options could be swept
    /// has none: then its rho).</summary>
    public string? Label { get; init; }
    public IReadOnlyList<H2T.Settings.SweptSetting>? Swept { get; init; }

    /// <summary>What a table shows for the member: its rho alone in a rho sweep, else its swept settings.</summary>
    public string Shown(SweepResult sweep)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        return sweep.IsRhoSweep || Label is null ? Rho.ToString("0.###",
            System.Globalization.CultureInfo.InvariantCulture) : Label;
    }

    /// <summary>Whether validation selected this member.</summary>
    public bool IsSelected(SweepResult sweep)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        return sweep.SelectedLabel is { } l && Label is not null ? l == Label : sweep.SelectedRho == Rho;
    }
}

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
        try { return System.Text.Json.JsonSerializer.Deserialize<SweepResult>(File.ReadAllText(file),
            AtomicFile.Json) ?? new SweepResult(); }
        catch (System.Text.Json.JsonException e) { throw new H2T.Settings.ConfigException(
            $"{file}: unreadable sweep ({e.Message})"); }
    }

    public void Write(string sweepFolder) => AtomicFile.WriteJson(PathIn(sweepFolder), this);

    public List<SweepRow> Rows { get; init; } = [];
    public double? SelectedRho { get; init; }
    /// <summary>The selected member's name (<see cref="SweepRow.Label"/>).</summary>
    public string? SelectedLabel { get; init; }
    /// <summary>The keys the sweep varied (rho, options); empty or just rho for a rho sweep.</summary>
    public IReadOnlyList<string> SweptKeys { get; init; } = [];

    /// <summary>Only rho varied: tables show rho alone.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsRhoSweep => SweptKeys.All(k => k == "rho");
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
