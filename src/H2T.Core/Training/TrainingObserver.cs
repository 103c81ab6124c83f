using H2T.Evaluation;

namespace H2T.Training;

/// <summary>What a training loop reports as it goes; the CLI renders it, tests record it.</summary>
public interface ITrainingObserver
{
    void EpochStarted(string stage, int epoch, int totalEpochs, int batches);
    void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond);
    void EpochCompleted(EpochRecord record);
    void Message(string text);
}

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
public sealed record EvaluationSummary(double Top1, double Top5, double Head, double Medium, double Tail, double Ece, double Nll)
{
    public static EvaluationSummary From(EvaluationResult r) => new(r.Top1, r.Top5, r.Head, r.Medium, r.Tail, r.Ece, r.Nll);
}

/// <summary>Observer that does nothing (library use without a console).</summary>
public sealed class SilentObserver : ITrainingObserver
{
    public static readonly SilentObserver Instance = new();
    public void EpochStarted(string stage, int epoch, int totalEpochs, int batches) { }
    public void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond) { }
    public void EpochCompleted(EpochRecord record) { }
    public void Message(string text) { }
}
