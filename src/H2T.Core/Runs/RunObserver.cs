namespace H2T.Runs;

/// <summary>What a training loop reports as it goes; the CLI renders it, tests record it.</summary>
public interface ITrainingObserver
{
    void EpochStarted(string stage, int epoch, int totalEpochs, int batches);
    void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond);
    void EpochCompleted(EpochRecord record);
    void Message(string text);
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
