using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// Stage II: the stage-I backbone is frozen (no gradient reaches it; with shift-BN it runs in train mode so only
/// BatchNorm running statistics adapt), and the classifier is re-trained on paired batches: a class-balanced tail
/// side whose label is kept and an instance-sampled head side whose feature-map channels H2T grafts in.
/// </summary>
public static class StageTwoTrainer
{
    /// <summary>Loads the stage-I checkpoint's data config (optionally with another data path) and trains.</summary>
    public static RunMetrics Run(string stageOneCheckpoint, StageTwoConfig config, RunFolder run, Device device,
        ITrainingObserver observer,
        string? dataPathOverride = null, bool resume = false, int? validationPerClass = null,
            CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var check = config.Check(); // before the data is read
        var start = StageTwoStart.Of(stageOneCheckpoint, dataPathOverride, validationPerClass);
        return Run(start.StageOneCheckpoint, check, start.LoadSplits(), run, device, observer, resume, cancel);
    }

    /// <summary>A single stage-II run from a record the caller has not checked: it is checked here, once.</summary>
    public static RunMetrics Run(string stageOneCheckpoint, StageTwoConfig config, DatasetSplits splits, RunFolder run,
        Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Run(stageOneCheckpoint, config.Check(), splits, run, device, observer, resume, cancel);
    }

    /// <summary>A single stage-II run: the engine with one member, in <paramref name="run"/>. The config was checked
    /// (the binder or <see cref="RunConfigChecks.Check(StageTwoConfig)"/>); nothing here checks it again.</summary>
    public static RunMetrics Run(string stageOneCheckpoint, Checked<StageTwoConfig> config, DatasetSplits splits,
        RunFolder run, Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(run);
        using var hold = run.Lock();
        return StageTwoEngine.Run(stageOneCheckpoint, new StageTwoPlan([new StageTwoMember([], run, config.Value)]),
            splits, device, observer,
            sweepDir: null, resume, cancel).Metrics[0];
    }
}

/// <summary>
/// A stage-II run's loaders: the tail side (its sampler), the head side (instance), their pairing, and the test and
/// validation loaders, each seeded from the run's seed. The single run and the sweep both use this, so they see the
/// same batches.
/// </summary>
internal sealed class StageTwoData : IDisposable
{
    readonly BatchLoader tail;
    readonly PairedLoader paired;

    StageTwoData(BatchLoader tail, PairedLoader paired, BatchLoader test, BatchLoader? validation, ISampler tailSampler,
        ISampler headSampler,
        DatasetSplits splits)
    {
        NumClasses = splits.NumClasses;
        Groups = splits.Groups;
        TailSampler = tailSampler;
        HeadSampler = headSampler;
        this.tail = tail;
        this.paired = paired;
        Test = test;
        Validation = validation;
    }

    public BatchLoader Test { get; }
    /// <summary>The two sides' samplers (the feature cache draws its pairs from them, as the loaders do).</summary>
    public ISampler TailSampler { get; }
    public ISampler HeadSampler { get; }
    public BatchLoader? Validation { get; }
    public int BatchesPerEpoch => tail.BatchesPerEpoch;
    public int NumClasses { get; }
    public ClassGroups Groups { get; }

    /// <summary>The two sides' samplers, seeded from the run's seed: what every feature source draws its pairs
    /// from.</summary>
    public static (ISampler Tail, ISampler Head) SamplersFor(DatasetSplits splits, StageTwoConfig config)
    {
        var labels = splits.Train.Labels;
        int n = splits.Train.Count;
        return (Samplers.Create(config.TailSampler, labels, Seeds.Derive(config.Seed, 0, Seeds.TailSampler), n),
            Samplers.Create(config.HeadSampler, labels, Seeds.Derive(config.Seed, 0, Seeds.HeadSampler), n));
    }

    public static StageTwoData Create(DatasetSplits splits, StageTwoConfig config, Device device)
    {
        var (tailSampler, headSampler) = SamplersFor(splits, config);
        var tail = new BatchLoader(splits.Train, tailSampler,
            config.Optim.BatchSize, splits.Norm, splits.TrainAugment, Seeds.Derive(config.Seed, 0, Seeds.Augment),
                prefetch: config.Prefetch, device: device);
        var head = new BatchLoader(splits.Train, headSampler,
            config.Optim.BatchSize, splits.Norm, splits.TrainAugment, Seeds.Derive(config.Seed, 0, Seeds.HeadAugment),
                prefetch: config.Prefetch, device: device);
        int evalBatch = Math.Max(config.Optim.BatchSize, 256);
        return new StageTwoData(tail, new PairedLoader(tail, head), Evaluator.TestLoader(splits, evalBatch, device,
            config.Prefetch),
            Evaluator.ValidationLoader(splits, evalBatch, device, config.Prefetch), tailSampler, headSampler, splits);
    }

    /// <summary>Paired batches; without fusion only the tail side, as the reference does for rho = 0 (the head side is
    /// not even loaded).</summary>
    public IEnumerable<BatchPair> Epoch(int epoch, bool fuse)
    {
        if (fuse)
        {
            foreach (var (t, h) in paired.Epoch(epoch)) yield return new BatchPair(t, h);
        }
        else
        {
            foreach (var t in tail.Epoch(epoch)) yield return new BatchPair(t, null);
        }
    }

    public void Dispose()
    {
        paired.Dispose(); // owns both sides
        Test.Dispose();
        Validation?.Dispose();
    }
}
