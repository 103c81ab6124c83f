using System.Diagnostics;
using System.Text.Json;
using H2T.Runs;
using H2T.Data;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using H2T.Settings;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// The one stage-II engine: a frozen backbone, and one classifier per member trained on its outputs. A single
/// <c>h2t stage2</c> run is one member; a sweep is one member per rho. The frozen backbone's feature maps for a
/// paired batch do not depend on rho, so they are computed once and every member trains on them, each with its own
/// channel draw (its own generator, seeded exactly as a single run's), optimizer, loss and run folder. A member's
/// folder ends up as the single run with that rho makes from the same batches, to float tolerance.
/// <para>BatchNorm shift: a rho = 0 member forwards only the tail side, a rho &gt; 0 member the tail then the head
/// side, so their running statistics differ. When the members have both, the running statistics of the rho = 0
/// members are carried separately: BN's update r' = (1 - m) r + m b is linear, so after the tail forward moved the
/// shared state from S to T, the rho = 0 state moves from S0 to T + (1 - m)(S0 - S) without another forward.</para>
/// <para>A loss that draws noise from torch's global generator (GCL) draws it member after member, so such members
/// are single runs with other noise draws, not the same draws.</para>
/// <para>Members share every setting but rho (the callers build them so).</para>
/// </summary>
internal static class StageTwoEngine
{
    /// <summary>One classifier to train: its rho, its run folder (the caller holds its lock) and its config.</summary>
    public sealed record MemberSpec(double Rho, RunFolder Run, StageTwoConfig Config);

    /// <summary>Every member's metrics (in the order given), the note on the data, and what training and evaluation cost.</summary>
    public sealed record Outcome(IReadOnlyList<RunMetrics> Metrics, string? Note, double TrainSeconds, double EvalSeconds);

    sealed class Member : IDisposable
    {
        public required MemberSpec Spec { get; init; }
        public double Rho => Spec.Rho;
        public RunFolder Run => Spec.Run;
        public StageTwoConfig Config => Spec.Config;
        public required ClassifierHead Head { get; init; }
        public required ClassificationLoss Loss { get; init; }
        public required OptimizerHelper Optimizer { get; init; }
        /// <summary>The member's feature augmentation (StageTwoMethods' fusion slot).</summary>
        public required IStageTwoMethod Fusion { get; init; }
        public required EpochLoop Loop { get; init; }
        public Random FusionRng { get; set; } = new(0);
        public EpochProgress? Progress { get; set; }
        public RunRecord? Record { get; set; }
        /// <summary>Its checkpoints' metadata, built once from <see cref="Record"/> (the epoch is set when saved).</summary>
        public CheckpointMeta? Meta { get; set; }

        public void Dispose()
        {
            Optimizer.Dispose();
            Loss.Dispose();
            Head.Dispose();
        }
    }

    /// <param name="sweepDir">The sweep folder the members belong to (recorded in their config.json); null for a single run.</param>
    public static Outcome Run(string stageOneCheckpoint, IReadOnlyList<MemberSpec> specs, DatasetSplits splits, Device device,
        ITrainingObserver observer, string? sweepDir, bool resume, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(specs);
        ArgumentNullException.ThrowIfNull(splits);
        ArgumentNullException.ThrowIfNull(observer);
        if (specs.Count == 0) throw new ArgumentException("stage II needs at least one member", nameof(specs));
        var from = Checkpoint.ReadMeta(stageOneCheckpoint);
        var fromPath = Path.GetFullPath(stageOneCheckpoint);
        var countNote = CheckStageOne(stageOneCheckpoint, from, splits);
        var note = splits.ValidationSplit is { } vs
            ? vs.Describe(splits.ClassNames) + (countNote is null ? "" : $"; {countNote}")
            : countNote;

        Backbone? backbone = null;
        var members = new List<Member>();
        try
        {
            foreach (var spec in specs)
            {
                // Each member replays a single run's start exactly; the first one's backbone is kept for all.
                var c = spec.Config;
                var (b, head) = LoadModels(stageOneCheckpoint, from, c, splits);
                if (backbone is null) backbone = b;
                else b.Dispose();
                ClassificationLoss? loss = null;
                try
                {
                    head.to(device);
                    loss = LossFactory.Create(c.Loss, splits.TrainClassCounts);
                    loss.CheckHead(head);
                    var optimizer = EpochTraining.Sgd(head.TrainableParameters(), c.Optim, c.Optim.Lr * c.LrFactor);
                    members.Add(new Member
                    {
                        Spec = spec, Head = head, Loss = loss, Optimizer = optimizer, Fusion = StageTwoMethods.Fusion(c),
                        Loop = new EpochLoop(spec.Run, members.Count == 0 ? observer : SilentObserver.Instance, "stage2"),
                    });
                }
                catch
                {
                    loss?.Dispose();
                    head.Dispose();
                    throw;
                }
            }
            foreach (var p in backbone!.parameters()) p.requires_grad = false;
            backbone.to(device);
            backbone.Precision = specs[0].Config.Precision;
            backbone.ChannelsLast = specs[0].Config.Layout == FeatureLayout.ChannelsLast;
            if (MixedPrecision.Warning(backbone.Precision) is { } warning) observer.Message(warning);
            return Train(backbone, members, splits, fromPath, from, device, observer, sweepDir, note, resume, cancel);
        }
        finally
        {
            foreach (var m in members) m.Dispose();
            backbone?.Dispose();
        }
    }

    static Outcome Train(Backbone backbone, List<Member> members, DatasetSplits splits, string fromPath, CheckpointMeta from,
        Device device, ITrainingObserver observer, string? sweepDir, string? note, bool resume, CancellationToken cancel)
    {
        var c0 = members[0].Config;
        int inChannels = splits.Train.Shape.Channels;
        var plain = members.Where(m => !m.Fusion.UsesHeadSide).ToList();
        var fused = members.Where(m => m.Fusion.UsesHeadSide).ToList();
        // The feature cache freezes BatchNorm after one re-estimation (FeatureCache), so there is one state only.
        bool twoStates = !c0.FeatureCache && c0.ShiftBn && plain.Count > 0 && fused.Count > 0;
        var bn = backbone.modules().OfType<BatchNorm>().ToList();
        if (twoStates && bn.Count == 0 && backbone.named_buffers().Any(b => b.name.EndsWith("running_mean", StringComparison.Ordinal)))
            throw new NotSupportedException($"{backbone.Architecture}: its normalisation layers are not BatchNorm modules; sweep rho = 0 apart from rho > 0");

        // Resume every member; they must all stop at the same epoch (members are checkpointed one after another).
        int start = -1;
        BnState? plainState = null;
        foreach (var m in members)
        {
            m.Record = new RunRecord("stage2", m.Config, splits, device.ToString())
            {
                From = fromPath, Sweep = sweepDir, Validation = note, DataConfig = CheckpointData.Recorded(from, splits.Config),
            };
            if (!resume || !File.Exists(m.Run.LastCheckpoint))
            {
                m.Record.WriteConfigFile(m.Run);
                m.Run.Log($"stage2 {(sweepDir is null ? "" : "(sweep member) ")}start from {fromPath}: {(m.Config.Fusion == StageTwoMethods.H2T ? $"rho {m.Rho}" : $"fusion {m.Fusion}")} tail {m.Config.TailSampler} head {m.Config.HeadSampler} " +
                          $"shift-bn {m.Config.ShiftBn} loss {m.Loss.Name} feature maps {MemoryLayout.Name(backbone.ChannelsLast)} " +
                          $"precision {MixedPrecision.Name(backbone.Precision)}" + (from.Precision != MixedPrecision.Name(backbone.Precision) ? $" (stage I ran in {from.Precision})" : "") +
                          (m.Config.FeatureCache ? $" feature cache {m.Config.FeatureCacheViews} view(s) storage {m.Config.FeatureCacheStorage}" : ""));
                if (note is not null) m.Run.Log($"stage2 data: {note}");
            }
            m.Loop.TryResume(resume, backbone, m.Head, m.Optimizer, m.Record);
            m.Meta = m.Record.Meta(backbone, m.Head.Kind);
            if (start >= 0 && m.Loop.StartEpoch != start)
                throw new ConfigException($"--resume: {m.Run.Path} stopped after epoch {m.Loop.StartEpoch}, {members[0].Run.Path} after {start}; " +
                                          "a sweep resumes only when all its members stopped at the same epoch (delete the folder to start over)");
            start = m.Loop.StartEpoch;
            if (twoStates && !m.Fusion.UsesHeadSide) plainState = BnState.Capture(bn); // rho = 0 is resumed first (sorted)
        }
        if (twoStates) plainState ??= BnState.Capture(bn); // fresh start: both states are the stage-I statistics
        double trainSeconds = 0, evalSeconds = 0;
        try
        {
            if (start < c0.Epochs)
            {
                using var data = StageTwoData.Create(splits, c0, device);
                double peak = c0.Optim.Lr * c0.LrFactor;
                // Built on every start, resumed or not: it depends only on the stage-I weights, the data and the seed.
                using var caches = c0.FeatureCache ? CachedMaps.Build(backbone, bn, splits, c0, device, sweepDir ?? members[0].Run.Path, plain.Count > 0, fused.Count > 0, observer, cancel) : null;
                if (caches is not null)
                {
                    trainSeconds += caches.BuildSeconds;
                    foreach (var m in members)
                    {
                        var mine = caches.For(m.Fusion.UsesHeadSide);
                        m.Run.Log($"stage2 feature cache: {mine.Views} view(s), {mine.RowBytes} bytes per map, {caches.TotalBytes / 1048576.0:F0} MiB, built in {caches.BuildSeconds:F1}s" +
                                  (!c0.ShiftBn ? "" : m.Fusion.UsesHeadSide
                                      ? " (BatchNorm statistics re-estimated on one epoch of each side, the tail side's maps under the balanced sampler's, the head side's under the instance sampler's, test maps under their mean; then frozen)"
                                      : " (BatchNorm statistics re-estimated on one balanced epoch, then frozen)"));
                    }
                }
                var cache = caches?.For(fused.Count > 0);

                for (int epoch = start; epoch < c0.Epochs; epoch++)
                {
                    EpochTraining.Begin("stage2", epoch, c0.Epochs, c0.Seed, data.BatchesPerEpoch, observer, cancel);
                    double lr = c0.Schedule.LrAt(peak, epoch, c0.Epochs);
                    foreach (var m in members)
                    {
                        EpochTraining.SetLearningRate(m.Optimizer, lr);
                        m.Loss.OnEpochStart(epoch, c0.Epochs);
                        m.FusionRng = new Random(Seeds.Derive(c0.Seed, epoch, Seeds.Fusion));
                        m.Head.train();
                        m.Progress = new EpochProgress("stage2", epoch, data.BatchesPerEpoch, lr, m == members[0] ? observer : SilentObserver.Instance);
                    }
                    // Evaluation leaves the backbone in eval mode; set its training mode once per epoch.
                    if (c0.ShiftBn && caches is null) backbone.train(); else backbone.eval();
                    var clock = Stopwatch.StartNew();
                    var batches = caches is null
                        ? data.Epoch(epoch, fuse: fused.Count > 0)
                        : caches.Epoch(data.TailSampler, data.HeadSampler, c0.Optim.BatchSize, epoch, fused.Count > 0, device);
                    EpochTraining.Run(batches, pair =>
                    {
                        var (t, h) = pair;
                        Tensor tailMap;
                        Tensor? headMap = null;
                        if (caches is not null) (tailMap, headMap) = (t.Images, h?.Images); // the batches are maps already
                        else using (no_grad())
                        {
                            using var before = twoStates ? BnState.Capture(bn) : null;
                            tailMap = backbone.call(t.Images);
                            if (twoStates) plainState!.FollowTailUpdate(bn, before!);
                            if (h is not null) headMap = backbone.call(h.Images);
                        }
                        foreach (var m in members)
                        {
                            Tensor loss;
                            if (!m.Fusion.UsesHeadSide) loss = m.Loss.Forward(m.Head, tailMap, t.Labels);
                            else
                            {
                                AugmentedBatch a;
                                using (no_grad()) a = m.Fusion.Augment(tailMap, headMap, t.Labels, h!.Labels, m.FusionRng, backbone.Experts);
                                // A mixed target (feature mixup): (1 - w) L(tail) + w L(other), mixup's loss.
                                loss = a.OtherLabels is { } other
                                    ? m.Loss.ForwardMixed(m.Head, a.Features, t.Labels, other, 1 - a.OtherWeight)
                                    : m.Loss.Forward(m.Head, a.Features, t.Labels);
                            }
                            m.Progress!.Add(EpochTraining.Step(m.Optimizer, loss), (int)t.Labels.shape[0]);
                        }
                    }, cancel);
                    trainSeconds += clock.Elapsed.TotalSeconds;
                    clock.Restart();
                    bool evaluate = c0.ShouldEvaluate(epoch);
                    // Evaluate and checkpoint each BN state's members with that state loaded into the backbone.
                    using var fusedState = twoStates ? BnState.Capture(bn) : null;
                    foreach (var (group, state) in new[] { (plain, caches is null ? plainState : caches.PlainBn), (fused, caches is null ? fusedState : caches.FusedBn) })
                    {
                        if (group.Count == 0) continue;
                        state?.Restore(bn);
                        cache = caches?.For(group == fused);
                        var heads = group.Select(m => m.Head).ToList();
                        int evalBatch = data.Test.BatchSize;
                        var test = !evaluate ? null : cache is null
                            ? Evaluator.EvaluateHeads(backbone, heads, data.Test, splits.NumClasses, splits.Groups)
                            : Evaluator.EvaluateHeadsOnMaps(heads, cache.Evaluation(validation: false, evalBatch, device), splits.NumClasses, splits.Groups);
                        var val = !evaluate || data.Validation is not { } v ? null : cache is null
                            ? Evaluator.EvaluateHeads(backbone, heads, v, splits.NumClasses, splits.Groups)
                            : Evaluator.EvaluateHeadsOnMaps(heads, cache.Evaluation(validation: true, evalBatch, device), splits.NumClasses, splits.Groups);
                        double secs = clock.Elapsed.TotalSeconds;
                        for (int k = 0; k < group.Count; k++)
                        {
                            var m = group[k];
                            m.Loop.Complete(new EpochOutcome(new EpochSchedule(epoch, c0.Epochs, lr), m.Progress!.MeanLoss, m.Progress.Seconds, m.Progress.Images, test?[k], val?[k], secs),
                                new RunState(m.Meta!, backbone, m.Head, m.Optimizer));
                        }
                    }
                    fusedState?.Restore(bn);
                    evalSeconds += clock.Elapsed.TotalSeconds;
                }
            }
            else foreach (var m in members) m.Loop.CompleteFinishedRun();
        }
        finally
        {
            plainState?.Dispose();
        }
        return new Outcome(members.Select(m => m.Loop.Metrics).ToList(), note, trainSeconds, evalSeconds);
    }

    /// <summary>
    /// The checkpoint must be a stage-I one, trained on this training set or on it plus the images a validation
    /// split held out (a stage-I run made without one): those were seen in stage I and are held out from stage II
    /// only. Returns a note saying so, or null.
    /// </summary>
    static string? CheckStageOne(string path, CheckpointMeta from, DatasetSplits splits)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(splits);
        if (from.Stage != "stage1")
            throw new ConfigException($"{path}: a {from.Stage} checkpoint; stage II starts from a stage-I checkpoint");
        if (from.ClassCounts.SequenceEqual(splits.TrainClassCounts)) return null;
        var held = splits.ValidationSplit?.HeldOutFromTraining;
        if (held is not null && from.ClassCounts.SequenceEqual(splits.TrainClassCounts.Zip(held, (a, b) => a + b)))
            return $"stage I trained on the {held.Sum()} validation image(s) held out of training (its checkpoint has no validation split); they are held out of stage II only";
        throw new ConfigException($"{path}: stage I saw class counts [{string.Join(", ", from.ClassCounts)}], this data gives [{string.Join(", ", splits.TrainClassCounts)}]");
    }

    /// <summary>
    /// A stage-II run's models: seed, build backbone and head, load the stage-I weights, optionally re-initialise the
    /// head. In this order, so that a sweep member (which replays it) starts exactly as the single run does.
    /// </summary>
    static (Backbone Backbone, ClassifierHead Head) LoadModels(string path, CheckpointMeta from, StageTwoConfig config, DatasetSplits splits)
    {
        manual_seed(config.Seed);
        var (_, backbone, head) = Checkpoint.Open(path, splits.Train.Shape.Channels, splits.NumClasses);
        try
        {
            head = StageTwoMethods.Classifier(config).AdaptHead(head, path);
            if (config.ReinitClassifier)
            {
                using var fresh = ModelFactory.CreateHead(from.Classifier, backbone, from.NumClasses);
                using var _ = no_grad();
                foreach (var (p, q) in head.parameters().Zip(fresh.parameters())) p.copy_(q);
            }
            return (backbone, head);
        }
        catch
        {
            backbone.Dispose();
            head.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The feature caches of a run. Without shift-BN one: the backbone is the same map for every member. With shift-BN
    /// the exact path normalises each batch by its own statistics in training, so the tail side's maps follow the
    /// balanced sampler's statistics and the head side's the instance sampler's; its fused members are then evaluated
    /// with running statistics that mixed both sides, and its rho = 0 members with the tail side's. The caches follow
    /// that: training views under the tail side's statistics (and, for fused members, the head side's), test maps under
    /// the tail side's (rho = 0) and under the mean of the two (fused members; equal to re-estimating on the pairs,
    /// since train-mode BatchNorm statistics depend on the batches only). Each group's state is loaded into the
    /// backbone before its members' checkpoints.
    /// </summary>
    sealed class CachedMaps : IDisposable
    {
        FeatureCache? plain, head, fusedEval;

        public BnState? PlainBn { get; private set; }
        public BnState? FusedBn { get; private set; }
        IEnumerable<FeatureCache> All => new[] { plain, head, fusedEval }.OfType<FeatureCache>().Distinct();
        public double BuildSeconds => All.Sum(c => c.BuildSeconds);
        public long TotalBytes => All.Sum(c => c.TotalBytes);

        /// <summary>The cache a group of members is evaluated (and, for rho = 0, trained) from.</summary>
        public FeatureCache For(bool fusedMember) => (fusedMember ? fusedEval ?? plain : plain)!;

        public static CachedMaps Build(Backbone backbone, List<BatchNorm> bn, DatasetSplits splits, StageTwoConfig c, Device device, string folder,
            bool anyPlain, bool anyFused, ITrainingObserver observer, CancellationToken cancel)
        {
            var maps = new CachedMaps();
            try
            {
                maps.plain = FeatureCache.Build(backbone, splits, c, device, folder, observer, cancel, FeatureCache.Statistics.TailSide,
                    evalSets: anyPlain || !c.ShiftBn, name: "-tail");
                if (!c.ShiftBn || !anyFused) return maps;
                using var tailSide = BnState.Capture(bn);
                maps.head = FeatureCache.Build(backbone, splits, c, device, folder, observer, cancel, FeatureCache.Statistics.HeadSide, evalSets: false, name: "-head");
                using var headSide = BnState.Capture(bn);
                BnState.Mean(bn, tailSide, headSide);
                maps.fusedEval = FeatureCache.Build(backbone, splits, c, device, folder, observer, cancel, FeatureCache.Statistics.Keep, trainViews: false, name: "-eval");
                maps.FusedBn = BnState.Capture(bn);
                if (anyPlain) maps.PlainBn = tailSide.Copy();
                return maps;
            }
            catch
            {
                maps.Dispose();
                throw;
            }
        }

        /// <summary>An epoch's batches of maps: tail maps from the tail-side cache and, for fused members, head maps
        /// from the head-side cache (or the one cache without shift-BN).</summary>
        public IEnumerable<BatchPair> Epoch(ISampler tail, ISampler headSampler, int batchSize, int epoch, bool fuse, Device device)
        {
            if (!fuse || head is null) return plain!.Epoch(tail, headSampler, batchSize, epoch, fuse, device);
            return plain!.Epoch(tail, headSampler, batchSize, epoch, fuse: true, device, readHead: false)
                .Zip(head.Epoch(tail, headSampler, batchSize, epoch, fuse: true, device, readTail: false), (t, h) => new BatchPair(t.First, h.First));
        }

        public void Dispose()
        {
            foreach (var c in All) c.Dispose();
            PlainBn?.Dispose();
            FusedBn?.Dispose();
        }
    }

    /// <summary>A copy of every BatchNorm running mean / variance / batch count.</summary>
    sealed class BnState : IDisposable
    {
        readonly Tensor[] means, vars, counts;

        BnState(Tensor[] means, Tensor[] vars, Tensor[] counts)
        {
            this.means = means;
            this.vars = vars;
            this.counts = counts;
        }

        public static BnState Capture(List<BatchNorm> bn)
        {
            using var _ = no_grad();
            return new BnState(
                bn.Select(b => b.running_mean!.clone().DetachFromDisposeScope()).ToArray(),
                bn.Select(b => b.running_var!.clone().DetachFromDisposeScope()).ToArray(),
                bn.Select(b => b.num_batches_tracked!.clone().DetachFromDisposeScope()).ToArray());
        }

        public BnState Copy()
        {
            using var _ = no_grad();
            return new BnState(means.Select(t => t.clone().DetachFromDisposeScope()).ToArray(), vars.Select(t => t.clone().DetachFromDisposeScope()).ToArray(),
                counts.Select(t => t.clone().DetachFromDisposeScope()).ToArray());
        }

        /// <summary>Loads the mean of two states into the modules (means and variances averaged, counts summed).</summary>
        public static void Mean(List<BatchNorm> bn, BnState a, BnState b)
        {
            using var _ = no_grad();
            for (int i = 0; i < bn.Count; i++)
            {
                bn[i].running_mean!.copy_(a.means[i]).add_(b.means[i]).mul_(0.5);
                bn[i].running_var!.copy_(a.vars[i]).add_(b.vars[i]).mul_(0.5);
                bn[i].num_batches_tracked!.copy_(a.counts[i]).add_(b.counts[i]);
            }
        }

        public void Restore(List<BatchNorm> bn)
        {
            using var _ = no_grad();
            for (int i = 0; i < bn.Count; i++)
            {
                bn[i].running_mean!.copy_(means[i]);
                bn[i].running_var!.copy_(vars[i]);
                bn[i].num_batches_tracked!.copy_(counts[i]);
            }
        }

        /// <summary>This (rho = 0) state takes the tail batch's update: S0 &lt;- T + (1 - m)(S0 - S), where S is
        /// <paramref name="before"/> and T the modules' state after the tail forward.</summary>
        public void FollowTailUpdate(List<BatchNorm> bn, BnState before)
        {
            using var _ = no_grad();
            for (int i = 0; i < bn.Count; i++)
            {
                double keep = 1 - (bn[i].momentum ?? throw new NotSupportedException("BatchNorm with momentum None (cumulative average) in a sweep"));
                means[i].sub_(before.means[i]).mul_(keep).add_(bn[i].running_mean!);
                vars[i].sub_(before.vars[i]).mul_(keep).add_(bn[i].running_var!);
                counts[i].add_(1);
            }
        }

        public void Dispose()
        {
            foreach (var t in means.Concat(vars).Concat(counts)) t.Dispose();
        }
    }
}
