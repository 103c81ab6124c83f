using System.Globalization;
using H2T.Settings;

namespace H2T.Fit;

/// <summary>One measured candidate: a tuning at an image size, its training and evaluation speed on this machine,
/// and the epochs the budget leaves it.</summary>
public sealed record FitCandidate(FitTuning Tuning, int ImageSize, double TrainImagesPerSecond,
    double EvalImagesPerSecond, int Epochs, double EstimatedSeconds, bool Fits, string Note);

/// <summary>
/// What <c>h2t fit</c> will train, and why: the plan is measured once, printed before training, written to
/// plan.json, and reused as it is by <c>--resume</c>.
/// </summary>
public sealed record FitPlan
{
    public required FitTuning Tuning { get; init; }
    /// <summary>The training image side; 0: the images' own size.</summary>
    public required int ImageSize { get; init; }
    public required int Epochs { get; init; }
    public required string Precision { get; init; }
    public required string Backbone { get; init; }
    public required string Pretrained { get; init; }
    public required double Lr { get; init; }
    public required int BatchSize { get; init; }
    public required IReadOnlyList<double> Rhos { get; init; }
    public required int Seed { get; init; }
    /// <summary>Estimated seconds of stage I, the stage-II sweep and the finish (report, export).</summary>
    public required double StageOneSeconds { get; init; }
    public required double SweepSeconds { get; init; }
    public required double FinishSeconds { get; init; }
    public required double BudgetSeconds { get; init; }
    /// <summary>Seconds already spent when the plan was made (reading, checks, splits, measurements).</summary>
    public required double SpentSeconds { get; init; }
    public IReadOnlyList<FitCandidate> Candidates { get; init; } = [];
    /// <summary>The reasons, a line each, as printed.</summary>
    public IReadOnlyList<string> Why { get; init; } = [];

    public double EstimatedTotalSeconds => SpentSeconds + StageOneSeconds + SweepSeconds + FinishSeconds;

    /// <summary>The plan on one line: "full fine-tune at 112 px, 12 epochs, bf16, lr 0.02".</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{TuningName(Tuning)} of {Backbone} from {Pretrained} at {SizeName(ImageSize)}, {Epochs} epochs, " +
        $"{Precision}, lr {Lr:0.####}, batch {BatchSize}; then stage II: cRT with H2T at rho " +
        $"{string.Join(", ", Rhos.Prepend(0))}, chosen on validation against stage I's own classifier");

    public static string TuningName(FitTuning t) => t switch
    {
        FitTuning.Frozen => "frozen network (linear probe)",
        FitTuning.Ssf => "SSF tuning",
        FitTuning.LastStage => "last-stage fine-tune",
        _ => "full fine-tune",
    };

    public static string SizeName(int size) => size == 0 ? "native size" : $"{size} px";

    /// <summary>The stage-I keys this plan sets, as <c>h2t stage1</c> would take them: the long way, printed for
    /// users who want to run the steps themselves.</summary>
    public TuningKind TuningKind => Tuning switch
    {
        FitTuning.Frozen => TuningKind.Frozen,
        FitTuning.Ssf => TuningKind.Ssf,
        _ => TuningKind.Full,
    };
}
