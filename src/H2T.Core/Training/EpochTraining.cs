using H2T.Runs;
using H2T.Data;
using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>A training batch and the second batch drawn beside it: stage II's head side, stage I's CMO minority
/// batch, or none.</summary>
internal sealed record BatchPair(Batch First, Batch? Second) : IDisposable
{
    public void Dispose()
    {
        First.Dispose();
        Second?.Dispose();
    }
}

/// <summary>
/// The train-one-epoch seam both stages use (as torchvision's references share <c>train_one_epoch</c>): the one SGD
/// factory, the epoch's start (torch's global generator seeded for the epoch, so anything drawing from it, such as
/// GCL's logit noise, replays on resume), the batch loop (one dispose scope per batch, cancellation between batches)
/// and the optimisation step. What a stage does with a batch is its own; evaluation and checkpoints are
/// <see cref="EpochLoop"/>'s.
/// </summary>
internal static class EpochTraining
{
    /// <summary>
    /// The run's optimiser over <paramref name="parameters"/>, starting at <paramref name="lr"/> (the schedule sets it
    /// every epoch): SGD with the run's momentum, weight decay and Nesterov; or AdamW with beta1 = momentum, whose
    /// weight decay skips one-dimensional parameters (norm scales and shifts, biases, SSF's and LWS's factors), as
    /// timm and the ViT fine-tuning recipes do.
    /// </summary>
    public static OptimizerHelper Optimizer(IEnumerable<Parameter> parameters, OptimConfig settings, double lr)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Optimizer != "adamw")
            return optim.SGD(parameters, lr, settings.Momentum, weight_decay: settings.WeightDecay,
                nesterov: settings.Nesterov);
        var all = parameters.ToList();
        var decay = all.Where(p => p.dim() > 1).ToList();
        var plain = all.Where(p => p.dim() <= 1).ToList();
        var groups = new List<AdamW.ParamGroup>();
        if (decay.Count > 0) groups.Add(new(decay, new AdamW.Options { weight_decay = settings.WeightDecay }));
        if (plain.Count > 0) groups.Add(new(plain, new AdamW.Options { weight_decay = 0 }));
        return optim.AdamW(groups, lr, settings.Momentum, 0.999, 1e-8, settings.WeightDecay);
    }

    public static void SetLearningRate(OptimizerHelper optimizer, double lr)
    {
        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
    }

    /// <summary>
    /// While the returned registration lives (one epoch), a cancellation (SIGTERM, Ctrl-C) is written to the run's log
    /// as it arrives. The epoch stops before its next batch and is dropped: the folder keeps the checkpoint and
    /// metrics of the epoch before, written atomically when that epoch ended, and --resume replays this one from its
    /// start with the same seeds.
    /// </summary>
    public static CancellationTokenRegistration OnInterrupt(RunFolder run, string stage, int epoch, int totalEpochs,
        CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(run);
        return cancel.Register(() => run.Log(epoch == 0
            ? $"{stage} interrupted in epoch 1/{totalEpochs}: stopping before the next batch; no epoch is " +
                $"checkpointed yet, --resume starts over"
            : $"{stage} interrupted in epoch {epoch + 1}/{totalEpochs}: stopping before the next batch; the folder " +
                $"keeps epoch {epoch}'s checkpoint, --resume replays epoch {epoch + 1} from its start"));
    }

    /// <summary>Starts an epoch: seeds torch's global generator for it and tells the observer.</summary>
    public static void Begin(string stage, int epoch, int totalEpochs, int seed, int batches,
        ITrainingObserver observer, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        manual_seed(Seeds.Derive(seed, epoch, Seeds.TorchGlobal));
        observer.EpochStarted(stage, epoch, totalEpochs, batches);
    }

    /// <summary>Runs <paramref name="step"/> on every batch, each batch and every tensor the step makes disposed
    /// before the next batch, and stops between batches when cancelled.</summary>
    public static void Run(IEnumerable<BatchPair> batches, Action<BatchPair> step, CancellationToken cancel)
    {
        foreach (var batch in batches)
        {
            using var pair = batch;
            using var scope = NewDisposeScope();
            step(pair);
            cancel.ThrowIfCancellationRequested();
        }
    }

    /// <summary>One optimisation step on <paramref name="loss"/>; returns its value for the epoch's progress.</summary>
    public static float Step(OptimizerHelper optimizer, Tensor loss)
    {
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        return loss.item<float>();
    }
}
