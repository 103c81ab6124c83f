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
/// The one stage-II engine: a frozen backbone, a feature source (<see cref="IFeatureSource"/>: a backbone pass per
/// batch, or features cached once), and one classifier per member of the <see cref="StageTwoPlan"/> trained on what
/// the source hands out. A single <c>h2t stage2</c> run is one member; a sweep is one member per point. Every member
/// trains on the same paired batches, each with its own channel draw (its own generator, seeded exactly as a single
/// run's), optimizer, loss and run folder, so a member's folder ends up as the single run with its settings makes
/// from the same batches, to float tolerance.
/// <para>A loss that draws noise from torch's global generator (GCL) draws it member after member, so such members
/// are single runs with other noise draws, not the same draws.</para>
/// </summary>
internal static class StageTwoEngine
{
    /// <summary>Every member's metrics (in the plan's order), the note on the data, and what training and evaluation
    /// cost.</summary>
    public sealed record Outcome(IReadOnlyList<RunMetrics> Metrics, string? Note, double TrainSeconds,
        double EvalSeconds);

    sealed class Member : IDisposable
    {
        public required StageTwoMember Spec { get; init; }
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
        public double Lr { get; private set; }
        public RunRecord? Record { get; set; }
        /// <summary>Its checkpoints' metadata, built once from <see cref="Record"/> (the epoch is set when
        /// saved).</summary>
        public CheckpointMeta? Meta { get; set; }

        public void BeginEpoch(int epoch, ITrainingObserver observer, int batches)
        {
            var c = Config;
            Lr = c.Schedule.LrAt(c.Optim.Lr * c.LrFactor, epoch, c.Epochs);
            EpochTraining.SetLearningRate(Optimizer, Lr);
            Loss.OnEpochStart(epoch, c.Epochs);
            FusionRng = new Random(Seeds.Derive(c.Seed, epoch, Seeds.Fusion));
            Head.train();
            Progress = new EpochProgress("stage2", epoch, batches, Lr, observer);
        }

        /// <summary>One step on a batch of features: the tail side as it is, or fused with the head side.</summary>
        public void Step(BatchPair pair, int experts)
        {
            var (t, h) = pair;
            Tensor loss;
            if (!Fusion.UsesHeadSide) loss = Loss.Forward(Head, t.Images, t.Labels);
            else
            {
                AugmentedBatch a;
                using (no_grad()) a = Fusion.Augment(t.Images, h!.Images, t.Labels, h.Labels, FusionRng, experts);
                // A mixed target (feature mixup): (1 - w) L(tail) + w L(other), mixup's loss.
                loss = a.OtherLabels is { } other
                    ? Loss.ForwardMixed(Head, a.Features, t.Labels, other, 1 - a.OtherWeight)
                    : Loss.Forward(Head, a.Features, t.Labels);
            }
            Progress!.Add(EpochTraining.Step(Optimizer, loss), (int)t.Labels.shape[0]);
        }

        public void Dispose()
        {
            Optimizer.Dispose();
            Loss.Dispose();
            Head.Dispose();
        }
    }

    /// <param name="sweepDir">The sweep folder the members belong to (recorded in their config.json); null for a single
    /// run.</param>
    public static Outcome Run(string stageOneCheckpoint, StageTwoPlan plan, DatasetSplits splits, Device device,
        ITrainingObserver observer, string? sweepDir, bool resume, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(splits);
        ArgumentNullException.ThrowIfNull(observer);
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
            foreach (var spec in plan.Members)
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
                    var optimizer = EpochTraining.Optimizer(head.TrainableParameters(), c.Optim,
                        c.Optim.Lr * c.LrFactor);
                    members.Add(new Member
                    {
                        Spec = spec, Head = head, Loss = loss, Optimizer = optimizer,
                            Fusion = StageTwoMethods.Fusion(c),
                        Loop = new EpochLoop(spec.Run, members.Count == 0 ? observer : SilentObserver.Instance,
                            "stage2"),
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
            if (MixedPrecision.Warning(backbone.Precision) is { } warning) observer.Message(warning);
            var folder = sweepDir ?? members[0].Run.Path;
            using var source = IFeatureSource.Create(backbone, splits, plan.Shared, device, folder,
                members.Any(m => !m.Fusion.UsesHeadSide), members.Any(m => m.Fusion.UsesHeadSide));
            var context = new RunContext(fromPath, from, device, sweepDir, note);
            return Train(backbone, source, plan.Shared, members, splits, context, observer, resume, cancel);
        }
        finally
        {
            foreach (var m in members) m.Dispose();
            backbone?.Dispose();
        }
    }

    sealed record RunContext(string FromPath, CheckpointMeta From, Device Device, string? SweepDir, string? Note);

    static Outcome Train(Backbone backbone, IFeatureSource source, StageTwoConfig shared, List<Member> members,
        DatasetSplits splits,
        RunContext context, ITrainingObserver observer, bool resume, CancellationToken cancel)
    {
        int start = ResumeAll(backbone, source, members, splits, context, resume);
        // Each BatchNorm state's members, evaluated and checkpointed with that state loaded.
        var groups = members.GroupBy(m => m.Fusion.UsesHeadSide).OrderBy(g => g.Key).Select(g => g.ToList()).ToList();
        var stateGroups = groups.Select(g => new StateGroup(g[0].Fusion.UsesHeadSide,
            [.. g.Select(m => m.Head)])).ToList();
        double trainSeconds = 0, evalSeconds = 0;
        if (start >= shared.Epochs)
        {
            foreach (var m in members) m.Loop.CompleteFinishedRun();
            return new Outcome([.. members.Select(m => m.Loop.Metrics)], context.Note, 0, 0);
        }
        source.Prepare(observer, cancel);
        trainSeconds += source.BuildSeconds;
        foreach (var m in members)
            if (source.Describe(m.Fusion.UsesHeadSide) is { } line) m.Run.Log(line);
        for (int epoch = start; epoch < shared.Epochs; epoch++)
        {
            EpochTraining.Begin("stage2", epoch, shared.Epochs, shared.Seed, source.BatchesPerEpoch, observer, cancel);
            foreach (var m in members) m.BeginEpoch(epoch, m == members[0] ? observer : SilentObserver.Instance,
                source.BatchesPerEpoch);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            EpochTraining.Run(source.Epoch(epoch), pair =>
            {
                foreach (var m in members) m.Step(pair, backbone.Experts);
            }, cancel);
            trainSeconds += clock.Elapsed.TotalSeconds;
            clock.Restart();
            source.Evaluate(shared.ShouldEvaluate(epoch), stateGroups, (g, test, val) =>
            {
                double secs = clock.Elapsed.TotalSeconds;
                for (int k = 0; k < groups[g].Count; k++)
                {
                    var m = groups[g][k];
                    var outcome = new EpochOutcome(new EpochSchedule(epoch, shared.Epochs, m.Lr), m.Progress!.MeanLoss,
                        m.Progress.Seconds,
                        m.Progress.Images, test?[k], val?[k], secs);
                    m.Loop.Complete(outcome, new RunState(m.Meta!, backbone, m.Head, m.Optimizer));
                }
            });
            evalSeconds += clock.Elapsed.TotalSeconds;
        }
        return new Outcome([.. members.Select(m => m.Loop.Metrics)], context.Note, trainSeconds, evalSeconds);
    }

    /// <summary>Starts or resumes every member (rho = 0 ones first, so the backbone ends with a fused member's
    /// BatchNorm state); they must all stop at the same epoch (members are checkpointed one after another).</summary>
    static int ResumeAll(Backbone backbone, IFeatureSource source, List<Member> members, DatasetSplits splits,
        RunContext context, bool resume)
    {
        int start = -1;
        foreach (var m in members.OrderBy(m => m.Fusion.UsesHeadSide))
        {
            m.Record = new RunRecord("stage2", m.Config, splits, context.Device.ToString())
            {
                From = context.FromPath, Sweep = context.SweepDir, Validation = context.Note,
                    DataConfig = CheckpointData.Recorded(context.From, splits.Config),
            };
            if (!resume || !File.Exists(m.Run.LastCheckpoint))
            {
                m.Record.WriteConfigFile(m.Run);
                m.Run.Log(StartLine(m, backbone, context));
                if (context.Note is not null) m.Run.Log($"stage2 data: {context.Note}");
            }
            m.Loop.TryResume(resume, backbone, m.Head, m.Optimizer, m.Record);
            m.Meta = m.Record.Meta(backbone, m.Head);
            if (start >= 0 && m.Loop.StartEpoch != start)
                throw new ConfigException(
                    $"--resume: {m.Run.Path} stopped after epoch {m.Loop.StartEpoch}, {members[0].Run.Path} after " +
                    $"{start}; " +
                                          "a sweep resumes only when all its members stopped at the same epoch " +
                                              "(delete the folder to start over)");
            start = m.Loop.StartEpoch;
            source.MemberResumed(m.Fusion.UsesHeadSide);
        }
        return start;
    }

    static string StartLine(Member m, Backbone backbone, RunContext context)
    {
        var c = m.Config;
        var precision = MixedPrecision.Name(backbone.Precision);
        return $"stage2 {(context.SweepDir is null ? "" : $"(sweep member {m.Spec.Label}) ")}start from " +
            $"{context.FromPath}: " +
               $"{(c.Fusion == StageTwoMethods.H2T ? $"rho {c.Rho}" : $"fusion {m.Fusion}")} tail {c.TailSampler} " +
                   $"head {c.HeadSampler} " +
               $"shift-bn {c.ShiftBn} loss {m.Loss.Name} feature maps {MemoryLayout.Name(backbone.ChannelsLast)} " +
                   $"precision {precision}" +
               (context.From.Precision != precision ? $" (stage I ran in {context.From.Precision})" : "") +
               (c.FeatureCache == FeatureCacheMode.Off ? "" :
                   $" feature cache {c.FeatureCache.ToString().ToLowerInvariant()} {c.ViewsOrDefault} view(s)") +
               (c.FeatureCache == FeatureCacheMode.Maps ? $" storage {c.FeatureCacheStorage}" : "");
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
            return $"stage I trained on the {held.Sum()} validation image(s) held out of training (its checkpoint " +
                $"has no validation split); they are held out of stage II only";
        throw new ConfigException(
            $"{path}: stage I saw class counts [{string.Join(", ", from.ClassCounts)}], this data gives " +
            $"[{string.Join(", ", splits.TrainClassCounts)}]");
    }

    /// <summary>
    /// A stage-II run's models: seed, build backbone and head, load the stage-I weights, optionally re-initialise the
    /// head. In this order, so that a sweep member (which replays it) starts exactly as the single run does.
    /// </summary>
    static (Backbone Backbone, ClassifierHead Head) LoadModels(string path, CheckpointMeta from, StageTwoConfig config,
        DatasetSplits splits)
    {
        manual_seed(config.Seed);
        // Built in the run's arithmetic and layout (members share them: StageTwoConfig.SharedSettings).
        var (_, backbone, head) = Checkpoint.Open(path, splits.Train.Shape.Channels, splits.NumClasses,
            config.Precision, config.Layout);
        try
        {
            head = StageTwoMethods.Classifier(config).AdaptHead(head, path);
            if (config.ReinitClassifier)
            {
                using var fresh = ModelFactory.CreateHead(from.Classifier, backbone, from.NumClasses, from.CosineScale);
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
}
