using System.Text.Json;
using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Interop;
using H2T.Losses;
using H2T.Models;
using H2T.Settings;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>Stage I: backbone + classifier on the long-tailed set (instance sampling, optional mixup).</summary>
public static class StageOneTrainer
{
    /// <summary>Checks the config (once), reads its data, trains.</summary>
    public static RunMetrics Run(StageOneConfig config, RunFolder run, Device device, ITrainingObserver observer,
        bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Run(config.Check(), run, device, observer, resume, cancel);
    }

    /// <summary>Reads the checked config's data and trains.</summary>
    public static RunMetrics Run(Checked<StageOneConfig> config, RunFolder run, Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Run(config, DatasetCatalog.Load(config.Value.Data), run, device, observer, resume, cancel);
    }

    /// <summary>Checks the config (once) and trains on <paramref name="splits"/>.</summary>
    public static RunMetrics Run(StageOneConfig config, DatasetSplits splits, RunFolder run, Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Run(config.Check(), splits, run, device, observer, resume, cancel);
    }

    /// <summary>Trains a checked config on <paramref name="splits"/>; nothing here checks the config again.</summary>
    public static RunMetrics Run(Checked<StageOneConfig> check, DatasetSplits splits, RunFolder run, Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(splits);
        ArgumentNullException.ThrowIfNull(run);
        var config = check.Value;
        int inChannels = splits.Train.Shape.Channels;
        manual_seed(config.Seed);
        using var loss = LossFactory.Create(config.Loss, splits.TrainClassCounts);
        using var backbone = ModelFactory.CreateBackbone(config.Backbone, inChannels, new(config.Precision,
            config.Layout));
        var headKind = config.Classifier;
        // A multi-expert backbone gets its own classifier (CreateHead maps linear/cosine to it and refuses the rest).
        if (backbone.ExpertHeadKind is null && loss.WantsNormalizedClassifier && headKind == "linear")
        {
            headKind = "cosine";
            observer.Message($"loss {config.Loss.Type} expects a cosine classifier: using classifier 'cosine'");
        }
        // LIFT's cosine classifier scales its cosines by 25; LDAM's family brings its own scale.
        double cosineScale = config.CosineScale ?? (loss.WantsNormalizedClassifier ? 1.0 : 25.0);
        using var head = ModelFactory.CreateHead(headKind, backbone, splits.NumClasses, cosineScale);
        loss.CheckHead(head);
        if (MixedPrecision.Warning(config.Precision) is { } warning) observer.Message(warning);
        bool fresh = !resume || !File.Exists(run.LastCheckpoint);
        var initialisation = new List<string>();
        if (config.Pretrained is not null)
            (config, splits) = StartFromPretrained(config, splits, backbone, run, fresh, observer, initialisation);
        if (config.Trainable is { } trainable)
        {
            int frozen = backbone.FreezeAllBut(trainable);
            initialisation.Add(
                $"trainable: {string.Join(", ", trainable)} and the classifier; {frozen} backbone parameter " +
                $"tensor(s) frozen, their BatchNorm in eval mode");
        }
        var tuned = config.Trainable is null
            ? Tuning.Apply(backbone, config.Tuning, config.TuningDim, splits.NumClasses)
            : Tuning.Summarize(backbone, TuningKind.Full);
        initialisation.Add(tuned.Describe());
        backbone.to(device);
        head.to(device);
        using var optimizer = EpochTraining.Optimizer(backbone.parameters().Where(p =>
            p.requires_grad).Concat(head.parameters()), config.Optim, config.Optim.Lr);

        using var hold = run.Lock();
        var loop = new EpochLoop(run, observer, "stage1");
        // The checkpoint's data config has an absolute path, so a later stage started elsewhere finds the data.
        var record = new RunRecord("stage1", config, splits, device.ToString())
        {
            DataConfig = JsonSerializer.SerializeToElement(config.Data.WithAbsolutePath(), AtomicFile.Json),
        };
        if (fresh)
        {
            record.WriteConfigFile(run);
            foreach (var line in initialisation)
            {
                observer.Message(line);
                run.Log(line);
            }
            run.Log($"stage1 start: {splits.Name} train {splits.Train.Count} test {splits.Test.Count} classes " +
                $"{splits.NumClasses} backbone {backbone.Architecture} head {headKind} loss {loss.Name} feature maps " +
                $"{MemoryLayout.Name(backbone.ChannelsLast)} precision {MixedPrecision.Name(config.Precision)}");
        }
        if (fresh && config.HeadInit == "class-mean")
        {
            var line = ClassMeanInit.Apply(backbone, head, splits, config, device);
            observer.Message(line);
            run.Log(line);
        }
        loop.TryResume(resume, backbone, head, optimizer, record);
        var template = record.Meta(backbone, head) with
        {
            TrainableParameters = tuned.TrainableParameters, BackboneParameters = tuned.TotalParameters,
        };
        if (loop.StartEpoch >= config.Epochs) return loop.CompleteFinishedRun();

        var labels = splits.Train.Labels;
        using var trainLoader = new BatchLoader(splits.Train, Samplers.Create(config.Sampler, labels, config.Seed),
            config.Optim.BatchSize,
            splits.Norm, splits.TrainAugment, config.Seed, prefetch: config.Prefetch, device: device);
        // CMO's minority side: the same images drawn by (inverse) class frequency, with their own sampling and
        // augmentation seeds.
        using var minorityLoader = config.Cmo is not { Probability: > 0 } ? null : new BatchLoader(splits.Train,
            Samplers.Create(config.Cmo.Sampler, labels, Seeds.Derive(config.Seed, 0, Seeds.CmoSampler), labels.Count),
                config.Optim.BatchSize,
            splits.Norm, splits.TrainAugment, Seeds.Derive(config.Seed, 0, Seeds.CmoAugment), prefetch: config.Prefetch,
                device: device);
        using var testLoader = Evaluator.TestLoader(splits, Math.Max(config.Optim.BatchSize, 256), device,
            config.Prefetch);
        using var validationLoader = Evaluator.ValidationLoader(splits, Math.Max(config.Optim.BatchSize, 256), device,
            config.Prefetch);

        // A training batch with, in the epochs where CMO can fire, a minority batch (assembled only then).
        IEnumerable<BatchPair> Batches(int epoch, bool cmoActive)
        {
            using var minority = cmoActive ? minorityLoader?.Epoch(epoch).GetEnumerator() : null;
            foreach (var b in trainLoader.Epoch(epoch))
            {
                Batch? m = null;
                try { if (minority is not null && minority.MoveNext()) m = minority.Current; }
                catch { b.Dispose(); throw; }
                yield return new BatchPair(b, m);
            }
        }

        for (int epoch = loop.StartEpoch; epoch < config.Epochs; epoch++)
        {
            using var interrupted = EpochTraining.OnInterrupt(run, "stage1", epoch, config.Epochs, cancel);
            EpochTraining.Begin("stage1", epoch, config.Epochs, config.Seed, trainLoader.BatchesPerEpoch, observer,
                cancel);
            double lr = config.Schedule.LrAt(config.Optim.Lr, epoch, config.Epochs);
            EpochTraining.SetLearningRate(optimizer, lr);
            loss.OnEpochStart(epoch, config.Epochs);

            backbone.TrainKeepingFrozenInEval();
            head.train();
            var mixRng = new Random(Seeds.Derive(config.Seed, epoch, Seeds.Mixup));
            using var permGen = new Generator((ulong)Seeds.Derive(config.Seed, epoch, Seeds.MixupPermutation));
            var progress = new EpochProgress("stage1", epoch, trainLoader.BatchesPerEpoch, lr, observer);
            var cmoRng = new Random(Seeds.Derive(config.Seed, epoch, Seeds.Cmo));
            EpochTraining.Run(Batches(epoch, config.Cmo?.ActiveAt(epoch, config.Epochs) == true), pair =>
                progress.Add(EpochTraining.Step(optimizer, BatchLoss(config, pair, loss, backbone, head, cmoRng, mixRng,
                    permGen)), (int)pair.First.Labels.shape[0]), cancel);
            loop.EndEpoch(new EpochSchedule(epoch, config.Epochs, lr), progress,
                config.ShouldEvaluate(epoch) ? () => Evaluator.Evaluate(backbone, head, testLoader, splits.NumClasses,
                    splits.Groups) : null,
                validationLoader is null ? null : () => Evaluator.Evaluate(backbone, head, validationLoader,
                    splits.NumClasses, splits.Groups),
                new RunState(template, backbone, head, optimizer));
        }
        return loop.Metrics;
    }

    /// <summary>
    /// A pretrained start: the weights loaded (a fresh run) and the images normalised as the network was trained,
    /// recorded in the data config so stage II, evaluation, predict and the export see the same input. A resumed run
    /// takes its weights and their normalisation from its own checkpoint: the source is not read again.
    /// </summary>
    static (StageOneConfig Config, DatasetSplits Splits) StartFromPretrained(StageOneConfig config,
        DatasetSplits splits,
        Backbone backbone, RunFolder run, bool fresh, ITrainingObserver observer, List<string> initialisation)
    {
        var pretrained = config.Pretrained!;
        int inChannels = splits.Train.Shape.Channels;
        var recorded = fresh ? null : CheckpointData.Of(run.LastCheckpoint, Checkpoint.ReadMeta(run.LastCheckpoint));
        var source = fresh ? PretrainedBackbone.Resolve(pretrained, new Progress(observer)) : null;
        var norm = recorded is { Mean: { } m, Std: { } sd } ? new Normalization(m, sd)
            : source is not null ? PretrainedBackbone.InputNormalization(source, backbone) : null;
        if (config.Data.Mean is null && norm is not null)
        {
            if (norm.Mean.Length != inChannels)
                throw new ConfigException(
                    $"pretrained: {pretrained} takes {norm.Mean.Length}-channel images; {splits.Name} has " +
                        $"{inChannels}");
            config = config with { Data = config.Data with { Mean = norm.Mean, Std = norm.Std } };
            splits = splits with { Norm = norm, Config = config.Data };
            static string List(float[] v, string format) =>
                string.Join(", ", v.Select(x => x.ToString(format, System.Globalization.CultureInfo.InvariantCulture)));
            initialisation.Add("pretrained: images normalised as the network was trained: " +
                $"mean [{List(norm.Mean, "0.####")}], std [{List(norm.Std, "0.#####")}] (x in [0, 1])");
        }
        if (source is not null) initialisation.AddRange(PretrainedBackbone.Load(source, backbone, splits.NumClasses));
        return (config, splits);
    }

    /// <summary>One batch's loss: CMO's minority CutMix when it fires, else mixup when on, else the plain
    /// loss.</summary>
    static Tensor BatchLoss(StageOneConfig config, BatchPair pair, ClassificationLoss loss, Backbone backbone,
        ClassifierHead head, Random cmoRng, Random mixRng, Generator permGen)
    {
        var (b, m) = pair;
        if (m is not null && cmoRng.NextDouble() < config.Cmo!.Probability && m.Count == b.Count)
        {
            var (mixed, lam) = CutMixMinority.Apply(b.Images, m.Images, config.Cmo.Beta, cmoRng);
            return loss.ForwardMixed(head, backbone.call(mixed), b.Labels, m.Labels, lam);
        }
        if (config.MixupAlpha > 0)
        {
            var (mixed, ya, yb, lam) = Mixup.Apply(b.Images, b.Labels, config.MixupAlpha, mixRng, permGen);
            return loss.ForwardMixed(head, backbone.call(mixed), ya, yb, lam);
        }
        return loss.Forward(head, backbone.call(b.Images), b.Labels);
    }

    /// <summary>A weight download's progress, as observer lines (synchronous: the download runs on this
    /// thread).</summary>
    sealed class Progress(ITrainingObserver observer) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => observer.Message(PretrainedBackbone.Describe(value));
    }
}
