using System.Diagnostics;
using H2T.Runs;
using H2T.Evaluation;
using H2T.Models;
using H2T.Settings;
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
    double bestValidation = double.NegativeInfinity;

    /// <summary>
    /// Loads last.ckpt if resuming; returns its metadata or null for a fresh start. Refuses to resume a run that was
    /// started with another config or from another stage-I checkpoint.
    /// </summary>
    public CheckpointMeta? TryResume(bool resume, Backbone backbone, ClassifierHead head, OptimizerHelper optimizer,
        RunRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var config = record.ConfigJson();
        var from = record.From;
        int inChannels = record.Splits.Train.Shape.Channels, numClasses = record.Splits.NumClasses;
        if (!resume || !File.Exists(run.LastCheckpoint))
        {
            if (resume) observer.Message($"--resume: no {run.LastCheckpoint} yet, starting from epoch 1");
            return null;
        }
        var found = Checkpoint.ReadMeta(run.LastCheckpoint);
        if (found.Stage != stage) throw new ConfigException(
            $"{run.LastCheckpoint}: a {found.Stage} checkpoint cannot resume {stage}");
        if (found.Config is { } old && DifferingKeys(old, config, record.DefaultConfigJson()) is { Count: > 0 } keys)
            throw new ConfigException(
                $"--resume: {run.Path} was started with another config (differs in: {string.Join(", ", keys)}); " +
                                      "use another --out or the same options");
        if (from is not null && found.From is not null && found.From != from)
            throw new ConfigException($"--resume: {run.Path} was trained from {found.From}, not {from}");
        var meta = Checkpoint.Load(run.LastCheckpoint, backbone, head, optimizer, inChannels, numClasses);
        StartEpoch = meta.Epoch + 1;
        BestTop1 = meta.BestTop1;
        BestEpoch = meta.BestEpoch;
        var metrics = run.ReadMetrics();
        Metrics = metrics with { Epochs = metrics.Epochs.Where(e => e.Epoch <= meta.Epoch).ToList(),
            Completed = false };
        if (Metrics.SelectedValidation is { } sv && Metrics.SelectedEpoch <= meta.Epoch) bestValidation = sv.Top1;
        observer.Message($"resuming {stage} from {run.LastCheckpoint} after epoch {meta.Epoch + 1}/{meta.TotalEpochs}");
        run.Log($"resume after epoch {meta.Epoch + 1}");
        return meta;
    }

    static List<string> DifferingKeys(System.Text.Json.JsonElement a, System.Text.Json.JsonElement b,
        System.Text.Json.JsonElement? defaults)
    {
        static string Compact(System.Text.Json.JsonElement e) => System.Text.Json.JsonSerializer.Serialize(e);
        if (a.ValueKind != System.Text.Json.JsonValueKind.Object ||
            b.ValueKind != System.Text.Json.JsonValueKind.Object)
            return Compact(a) == Compact(b) ? [] : ["config"];
        System.Text.Json.JsonElement? DefaultOf(string k) =>
            defaults is { ValueKind: System.Text.Json.JsonValueKind.Object } d && d.TryGetProperty(k,
                out var v) ? v : null;
        // A setting added after a run started (pretrained, precision, layout, fusion, ...) differs only when it is not
        // at
        // its record's default, which is what the older run used.
        bool AtDefault(string k,
            System.Text.Json.JsonElement e) => DefaultOf(k) is { } dv ? Compact(dv) == Compact(e) : IsEmpty(e);
        var keys = a.EnumerateObject().Select(p => p.Name).Union(b.EnumerateObject().Select(p => p.Name));
        return keys.Where(k => (a.TryGetProperty(k, out var x), b.TryGetProperty(k, out var y)) switch
        {
            // Nested objects (the data config) compare key by key, so a key added later at its default is no
            // difference.
            (true, true) => x.ValueKind == System.Text.Json.JsonValueKind.Object &&
                y.ValueKind == System.Text.Json.JsonValueKind.Object
                ? DifferingKeys(x, y, DefaultOf(k)).Count > 0 : Compact(x) != Compact(y),
            (false, true) => !AtDefault(k, y),
            (true, false) => !AtDefault(k, x),
            _ => false,
        }).ToList();
    }

    /// <summary>A value that stands for "not set" where no default is known (a nested record's field left at null, 0 or
    /// false).</summary>
    static bool IsEmpty(System.Text.Json.JsonElement e) => e.ValueKind switch
    {
        System.Text.Json.JsonValueKind.Null or System.Text.Json.JsonValueKind.False => true,
        System.Text.Json.JsonValueKind.Number => e.GetDouble() == 0, // resize: 0 (native size)
        _ => false,
    };

    /// <summary>A resumed run whose last epoch was already checkpointed: only the completion mark was
    /// missing.</summary>
    public RunMetrics CompleteFinishedRun()
    {
        Metrics = Metrics with { Completed = true };
        run.WriteMetrics(Metrics);
        return Metrics;
    }

    /// <summary>Ends an epoch: evaluates if asked (validation only alongside test), then <see
    /// cref="Complete"/>.</summary>
    public void EndEpoch(EpochSchedule at, EpochProgress progress, Func<EvaluationResult>? evaluate,
        Func<EvaluationResult>? validate, RunState state)
    {
        var clock = Stopwatch.StartNew();
        var test = evaluate?.Invoke();
        var validation = evaluate is null ? null : validate?.Invoke();
        Complete(new EpochOutcome(at, progress.MeanLoss, progress.Seconds, progress.Images, test, validation,
            clock.Elapsed.TotalSeconds), state);
    }

    /// <summary>
    /// Records an epoch. Order matters for crash safety: metrics (epoch added, not completed), best.ckpt and
    /// final-eval.json, then last.ckpt (the commit point a resume starts from), then the completion mark.
    /// best.ckpt is the best epoch on validation when there is a validation split, else (labelled so) on test.
    /// </summary>
    public void Complete(EpochOutcome outcome, RunState state)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        ArgumentNullException.ThrowIfNull(state);
        var (at, trainLoss, trainSeconds, images, test, validation, evalSeconds) = outcome;
        var (epoch, totalEpochs, lr) = at;
        var (template, backbone, head, optimizer) = state;
        var testSummary = test is null ? null : EvaluationSummary.From(test);
        var valSummary = validation is null ? null : EvaluationSummary.From(validation);
        // Resident memory at the end of every epoch: a leak shows as drift across epochs (docs/performance.md).
        using var self = Process.GetCurrentProcess();
        var record = new EpochRecord(stage, epoch, lr, trainLoss, trainSeconds, images / Math.Max(trainSeconds, 1e-9),
            evalSeconds, testSummary, valSummary,
            self.WorkingSet64 / 1048576.0, self.PeakWorkingSet64 / 1048576.0);
        bool bestTest = test is not null && test.Top1 > BestTop1;
        if (bestTest) { BestTop1 = test!.Top1; BestEpoch = epoch; }
        bool selected = valSummary is not null && valSummary.Top1 > bestValidation;
        if (selected) bestValidation = valSummary!.Top1;
        bool best = validation is not null ? selected : bestTest;
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
            FinalValidation = last ? valSummary : Metrics.FinalValidation,
            SelectedEpoch = selected ? epoch : Metrics.SelectedEpoch,
            SelectedValidation = selected ? valSummary : Metrics.SelectedValidation,
            SelectedTest = selected ? testSummary : Metrics.SelectedTest,
            Completed = false,
        };
        run.WriteMetrics(Metrics);
        var m = template with { Stage = stage, Epoch = epoch, TotalEpochs = totalEpochs, BestTop1 = BestTop1,
            BestEpoch = BestEpoch };
        if (best) Checkpoint.Save(run.BestCheckpoint, m, backbone, head, null);
        if (last && test is not null)
        {
            if (test.Images is { } perImage) AtomicFile.WriteJson(run.TestPredictionsFile, perImage);
            AtomicFile.WriteJson(run.FinalEvalFile, test);
        }
        Checkpoint.Save(run.LastCheckpoint, m, backbone, head, optimizer);
        if (last)
        {
            Metrics = Metrics with { Completed = true };
            run.WriteMetrics(Metrics);
        }
        run.Log($"{stage} epoch {epoch + 1}/{totalEpochs} lr {lr:G4} loss {trainLoss:F4} {record.ImagesPerSecond:F0} " +
            $"img/s train {trainSeconds:F1}s" +
                (test is null ? " (not evaluated)" :
                    $" eval {evalSeconds:F1}s top1 {test.Top1:F2} head {test.Head:F2} medium {test.Medium:F2} tail " +
                    $"{test.Tail:F2} ece {test.Ece:F2}") +
                (valSummary is null ? "" :
                    $" | validation top1 {valSummary.Top1:F2} head {valSummary.Head:F2} medium " +
                    $"{valSummary.Medium:F2} tail {valSummary.Tail:F2}"));
        observer.EpochCompleted(record);
    }

}

/// <summary>Running loss and throughput of one epoch, reported to the observer after every batch.</summary>
/// <summary>Which epoch of how many, at which learning rate.</summary>
internal sealed record EpochSchedule(int Epoch, int TotalEpochs, double Lr);

/// <summary>What one epoch produced: its training figures and, when evaluated, the test (and validation)
/// results.</summary>
internal sealed record EpochOutcome(EpochSchedule At, double TrainLoss, double TrainSeconds, long Images,
    EvaluationResult? Test,
    EvaluationResult? Validation, double EvalSeconds);

/// <summary>What a checkpoint of the run holds: the metadata template and the modules and optimizer to save.</summary>
internal sealed record RunState(CheckpointMeta Template, Backbone Backbone, ClassifierHead Head,
    OptimizerHelper Optimizer);

internal sealed class EpochProgress(string stage, int epoch, int batches, double lr, ITrainingObserver observer)
{
    readonly Stopwatch clock = Stopwatch.StartNew();
    double lossSum;
    int batch;

    public long Images { get; private set; }
    public double Seconds => clock.Elapsed.TotalSeconds;
    public double MeanLoss => lossSum / Math.Max(Images, 1);

    public void Add(double loss, int count)
    {
        if (double.IsNaN(loss) || double.IsInfinity(loss))
            throw new InvalidOperationException(
                $"{stage} epoch {epoch + 1} batch {batch + 1}: loss is {loss} (lr {lr} too high?)");
        lossSum += loss * count;
        Images += count;
        observer.BatchCompleted(++batch, batches, MeanLoss, lr, Images / Math.Max(Seconds, 1e-9));
    }
}
