using System.Diagnostics;
using H2T.Evaluation;
using H2T.Models;
using TorchSharp.Modules;

namespace H2T.Training;

/// <summary>
/// The part both stages share: resume from last.ckpt, per-epoch lr, train, evaluate, metrics.json then checkpoints
/// (in that order: a crash between the two replays the epoch deterministically instead of losing it).
/// </summary>
internal sealed class EpochLoop(RunFolder run, ITrainingObserver observer, string stage)
{
    public int StartEpoch { get; private set; }
    public RunMetrics Metrics { get; private set; } = new() { Stage = stage };
    public double BestTop1 { get; private set; } = double.NegativeInfinity;
    public int BestEpoch { get; private set; } = -1;

    /// <summary>Loads last.ckpt if resuming; returns its metadata or null for a fresh start.</summary>
    public CheckpointMeta? TryResume(bool resume, Backbone backbone, ClassifierHead head, OptimizerHelper optimizer, int inChannels, int numClasses)
    {
        if (!resume || !File.Exists(run.LastCheckpoint))
        {
            if (resume) observer.Message($"--resume: no {run.LastCheckpoint} yet, starting from epoch 1");
            return null;
        }
        var meta = Checkpoint.Load(run.LastCheckpoint, backbone, head, optimizer, inChannels, numClasses);
        if (meta.Stage != stage) throw new ConfigException($"{run.LastCheckpoint}: a {meta.Stage} checkpoint cannot resume {stage}");
        StartEpoch = meta.Epoch + 1;
        BestTop1 = meta.BestTop1;
        BestEpoch = meta.BestEpoch;
        var old = run.ReadMetrics();
        Metrics = old with { Epochs = old.Epochs.Where(e => e.Epoch <= meta.Epoch).ToList(), Completed = false };
        observer.Message($"resuming {stage} from {run.LastCheckpoint} after epoch {meta.Epoch + 1}/{meta.TotalEpochs}");
        run.Log($"resume after epoch {meta.Epoch + 1}");
        return meta;
    }

    /// <summary>Records an epoch, writes metrics, then last (and best) checkpoints.</summary>
    public void Complete(int epoch, int totalEpochs, double lr, double trainLoss, double trainSeconds, long images,
        EvaluationResult? test, double evalSeconds, Func<int, double, int, CheckpointMeta> meta, Backbone backbone, ClassifierHead head, OptimizerHelper optimizer)
    {
        var record = new EpochRecord(stage, epoch, lr, trainLoss, trainSeconds, images / Math.Max(trainSeconds, 1e-9), evalSeconds, test is null ? null : EvaluationSummary.From(test));
        bool best = test is not null && test.Top1 > BestTop1;
        if (best) { BestTop1 = test!.Top1; BestEpoch = epoch; }
        bool last = epoch == totalEpochs - 1;
        var epochs = Metrics.Epochs.Where(e => e.Epoch != epoch).Append(record).ToList();
        var bestRecord = epochs.FirstOrDefault(e => e.Epoch == BestEpoch);
        Metrics = Metrics with
        {
            Epochs = epochs,
            BestOnTest = bestRecord?.Test,
            BestOnTestEpoch = BestEpoch,
            Final = last ? record.Test : Metrics.Final,
            FinalEpoch = last ? epoch : Metrics.FinalEpoch,
            FinalPerClassAccuracy = last ? test?.PerClassAccuracy : Metrics.FinalPerClassAccuracy,
            Completed = last,
        };
        run.WriteMetrics(Metrics);
        var m = meta(epoch, BestTop1, BestEpoch);
        Checkpoint.Save(run.LastCheckpoint, m, backbone, head, optimizer);
        if (best) Checkpoint.Save(run.BestCheckpoint, m, backbone, head, null);
        if (last && test is not null) AtomicFile.WriteJson(run.FinalEvalFile, test);
        run.Log($"{stage} epoch {epoch + 1}/{totalEpochs} lr {lr:G4} loss {trainLoss:F4} {record.ImagesPerSecond:F0} img/s train {trainSeconds:F1}s" +
                (test is null ? " (not evaluated)" : $" eval {evalSeconds:F1}s top1 {test.Top1:F2} head {test.Head:F2} medium {test.Medium:F2} tail {test.Tail:F2} ece {test.Ece:F2}"));
        observer.EpochCompleted(record);
    }

    public static double Seconds(Stopwatch sw) => sw.Elapsed.TotalSeconds;
}
