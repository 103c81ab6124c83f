using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using H2T.Data;
using H2T.Evaluation;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>A stage-II sweep: one <see cref="StageTwoConfig"/> (its Rho ignored) trained for every value in
/// <see cref="Rhos"/> at once. <see cref="ValidationPerClass"/> adds a validation split when stage I had none.</summary>
public sealed record SweepConfig(StageTwoConfig StageTwo, double[] Rhos, int ValidationPerClass = 100)
{
    public void Validate()
    {
        if (Rhos.Length == 0) throw new ConfigException("rho: the sweep needs at least one value");
        foreach (var r in Rhos) (StageTwo with { Rho = r }).Validate();
        if (Rhos.Distinct().Count() != Rhos.Length) throw new ConfigException($"rho: values repeat in [{string.Join(", ", Rhos)}]");
        if (ValidationPerClass < 0) throw new ConfigException($"val_per_class must be >= 0, got {ValidationPerClass}");
    }

    /// <summary>"0:1:0.1" (start:stop:step, stop included) or "0,0.25,0.5".</summary>
    public static double[] ParseRhos(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        static double Num(string s, string spec) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
                ? v : throw new ConfigException($"rho '{spec}': '{s}' is not a number (expected start:stop:step or a comma list)");
        var parts = spec.Split(':', StringSplitOptions.TrimEntries);
        if (parts.Length == 3)
        {
            double a = Num(parts[0], spec), b = Num(parts[1], spec), step = Num(parts[2], spec);
            if (!(step > 0) || b < a) throw new ConfigException($"rho '{spec}': expected start <= stop and step > 0");
            int n = (int)Math.Floor((b - a) / step + 1e-9) + 1;
            // Rounded to 10 decimals so 0.1 * 3 is 0.3, the value a user typed, not 0.30000000000000004.
            return Enumerable.Range(0, n).Select(i => Math.Round(a + i * step, 10)).ToArray();
        }
        if (parts.Length != 1) throw new ConfigException($"rho '{spec}': expected start:stop:step or a comma list");
        return spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => Num(s, spec)).ToArray();
    }

    public static string FolderName(double rho) => string.Create(CultureInfo.InvariantCulture, $"rho{rho:0.###}");
}

/// <summary>One rho of a sweep at its final epoch, and at the epoch validation selects.</summary>
public sealed record SweepRow(double Rho, string RunFolder, EvaluationSummary? FinalValidation, EvaluationSummary? FinalTest,
    int SelectedEpoch, EvaluationSummary? SelectedValidation, EvaluationSummary? SelectedTest);

/// <summary>sweep.json: every rho, the rho validation selects (final epoch, validation top-1) and where its
/// checkpoint is, and what the sweep cost.</summary>
public sealed record SweepResult
{
    public List<SweepRow> Rows { get; init; } = [];
    public double? SelectedRho { get; init; }
    public string? SelectedCheckpoint { get; init; }
    public string SelectedBy { get; init; } = "";
    public string? ValidationNote { get; init; }
    public string? Dataset { get; init; }
    public string? From { get; init; }
    public int Epochs { get; init; }
    public double WallSeconds { get; init; }
    public double TrainSeconds { get; init; }
    public double EvalSeconds { get; init; }
}

/// <summary>
/// Stage II for many rho values in one pass (issue 8). The frozen backbone's feature maps for a paired batch do not
/// depend on rho, so they are computed once and K classifiers, one per rho, train on them, each with its own channel
/// draw (its own generator, seeded exactly as a single run's), optimizer, loss and run folder. Each folder ends up as
/// the single run <c>h2t stage2 --rho r</c> would make from the same batches, to float tolerance.
/// <para>BatchNorm shift: a single rho = 0 run forwards only the tail side, a rho &gt; 0 run the tail then the head
/// side, so their running statistics differ. When a sweep has both, the running statistics of the rho = 0 runs are
/// carried separately: BN's update r' = (1 - m) r + m b is linear, so after the tail forward moved the shared state
/// from S to T, the rho = 0 state moves from S0 to T + (1 - m)(S0 - S) without another forward.</para>
/// <para>A loss that draws noise from torch's global generator (GCL) draws it member after member, so such members
/// are single runs with other noise draws, not the same draws.</para>
/// </summary>
public static class StageTwoSweep
{
    sealed class Member : IDisposable
    {
        public required double Rho { get; init; }
        public required RunFolder Run { get; init; }
        public required ClassifierHead Head { get; init; }
        public required ClassificationLoss Loss { get; init; }
        public required OptimizerHelper Optimizer { get; init; }
        public required HeadToTailFusion Fusion { get; init; }
        public required EpochLoop Loop { get; init; }
        public required StageTwoConfig Config { get; init; }
        public Random FusionRng { get; set; } = new(0);
        public EpochProgress? Progress { get; set; }

        public void Dispose()
        {
            Optimizer.Dispose();
            Loss.Dispose();
            Head.Dispose();
        }
    }

    public static SweepResult Run(string stageOneCheckpoint, SweepConfig config, string outDir, Device device, ITrainingObserver observer,
        string? dataPathOverride = null, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var meta = Checkpoint.ReadMeta(stageOneCheckpoint);
        var data = StageTwoTrainer.DataConfigFor(stageOneCheckpoint, meta, dataPathOverride, config.ValidationPerClass > 0 ? config.ValidationPerClass : null);
        var splits = DatasetCatalog.Load(data);
        return Run(stageOneCheckpoint, config, splits, outDir, device, observer, resume, cancel);
    }

    public static SweepResult Run(string stageOneCheckpoint, SweepConfig config, DatasetSplits splits, string outDir, Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(splits);
        ArgumentNullException.ThrowIfNull(observer);
        config.Validate();
        var wall = Stopwatch.StartNew();
        var from = Checkpoint.ReadMeta(stageOneCheckpoint);
        var fromPath = Path.GetFullPath(stageOneCheckpoint);
        var countNote = StageTwoTrainer.CheckStageOne(stageOneCheckpoint, from, splits);
        var validationNote = splits.ValidationSplit is { } vs
            ? vs.Describe(splits.ClassNames) + (countNote is null ? "" : $"; {countNote}")
            : null;
        var baseConfig = config.StageTwo;
        // rho = 0 first: its folder is resumed first, so the shared backbone ends up with the fused runs' BN state.
        var rhos = config.Rhos.OrderBy(r => r).ToArray();

        Backbone? backbone = null;
        var members = new List<Member>();
        // The sweep's folder and every member's: no second process may write any of them.
        var holds = new List<RunFolderLock> { RunFolderLock.Acquire(outDir) };
        try
        {
            foreach (var rho in rhos) holds.Add(RunFolderLock.Acquire(Path.Combine(outDir, SweepConfig.FolderName(rho))));
            foreach (var rho in rhos)
            {
                // Each member replays a single run's start exactly; the first one's backbone is kept for all.
                var c = baseConfig with { Rho = rho };
                var (b, head) = StageTwoTrainer.LoadModels(stageOneCheckpoint, from, c, splits);
                if (backbone is null) backbone = b;
                else b.Dispose();
                head.to(device);
                var loss = LossFactory.Create(c.Loss, splits.TrainClassCounts);
                loss.CheckHead(head);
                var optimizer = optim.SGD(head.TrainableParameters(), c.Optim.Lr * c.LrFactor, c.Optim.Momentum,
                    weight_decay: c.Optim.WeightDecay, nesterov: c.Optim.Nesterov);
                var run = new RunFolder(Path.Combine(outDir, SweepConfig.FolderName(rho)));
                members.Add(new Member
                {
                    Rho = rho, Run = run, Head = head, Loss = loss, Optimizer = optimizer, Fusion = new HeadToTailFusion(rho),
                    Loop = new EpochLoop(run, rho == rhos[0] ? observer : SilentObserver.Instance, "stage2"), Config = c,
                });
            }
            foreach (var p in backbone!.parameters()) p.requires_grad = false;
            backbone.to(device);
            return Train(backbone, members, splits, fromPath, from, config, outDir, device, observer, validationNote, resume, wall, cancel);
        }
        finally
        {
            foreach (var m in members) m.Dispose();
            backbone?.Dispose();
            foreach (var h in holds) h.Dispose();
        }
    }

    static SweepResult Train(Backbone backbone, List<Member> members, DatasetSplits splits, string fromPath, CheckpointMeta from,
        SweepConfig config, string outDir, Device device, ITrainingObserver observer, string? validationNote, bool resume,
        Stopwatch wall, CancellationToken cancel)
    {
        var c0 = config.StageTwo;
        int inChannels = splits.Train.Shape.Channels;
        var plain = members.Where(m => m.Rho == 0).ToList();
        var fused = members.Where(m => m.Rho > 0).ToList();
        bool twoStates = c0.ShiftBn && plain.Count > 0 && fused.Count > 0;
        var bn = backbone.modules().OfType<BatchNorm>().ToList();
        if (twoStates && bn.Count == 0 && backbone.named_buffers().Any(b => b.name.EndsWith("running_mean", StringComparison.Ordinal)))
            throw new NotSupportedException($"{backbone.Architecture}: its normalisation layers are not BatchNorm modules; sweep rho = 0 apart from rho > 0");

        // Resume every member; they must all stop at the same epoch (a sweep is checkpointed member by member).
        int start = -1;
        BnState? plainState = null;
        foreach (var m in members)
        {
            var configJson = JsonSerializer.SerializeToElement(m.Config, AtomicFile.Json);
            if (!resume || !File.Exists(m.Run.LastCheckpoint))
            {
                AtomicFile.WriteJson(m.Run.ConfigFile, new { stage = "stage2", from = fromPath, config = m.Config, dataset = splits.Name,
                    class_counts = splits.TrainClassCounts, device = device.ToString(), sweep = outDir, validation = validationNote });
                m.Run.Log($"stage2 (sweep member) start from {fromPath}: rho {m.Rho} tail {m.Config.TailSampler} head {m.Config.HeadSampler} shift-bn {m.Config.ShiftBn} loss {m.Loss.Name}");
            }
            m.Loop.TryResume(resume, backbone, m.Head, m.Optimizer, inChannels, splits.NumClasses, configJson, fromPath);
            if (start >= 0 && m.Loop.StartEpoch != start)
                throw new ConfigException($"--resume: {m.Run.Path} stopped after epoch {m.Loop.StartEpoch}, {members[0].Run.Path} after {start}; " +
                                          "a sweep resumes only when all its members stopped at the same epoch (delete the folder to start over)");
            start = m.Loop.StartEpoch;
            if (twoStates && m.Rho == 0) plainState = BnState.Capture(bn); // rho = 0 is resumed first (sorted)
        }
        if (twoStates) plainState ??= BnState.Capture(bn); // fresh start: both states are the stage-I statistics
        var template = new CheckpointMeta
        {
            Architecture = backbone.Architecture, InChannels = inChannels, NumClasses = splits.NumClasses, Classifier = members[0].Head.Kind,
            ClassCounts = splits.TrainClassCounts, Dataset = splits.Name, Seed = c0.Seed, DataConfig = from.DataConfig, From = fromPath,
        };
        double trainSeconds = 0, evalSeconds = 0;
        try
        {
            if (start < c0.Epochs)
            {
                using var data = StageTwoData.Create(splits, c0, device);
                double peak = c0.Optim.Lr * c0.LrFactor;

                for (int epoch = start; epoch < c0.Epochs; epoch++)
                {
                    cancel.ThrowIfCancellationRequested();
                    manual_seed(Seeds.Derive(c0.Seed, epoch, Seeds.TorchGlobal));
                    double lr = c0.Schedule.LrAt(peak, epoch, c0.Epochs);
                    observer.EpochStarted("stage2", epoch, c0.Epochs, data.BatchesPerEpoch);
                    foreach (var m in members)
                    {
                        foreach (var g in m.Optimizer.ParamGroups) g.LearningRate = lr;
                        m.Loss.OnEpochStart(epoch, c0.Epochs);
                        m.FusionRng = new Random(Seeds.Derive(c0.Seed, epoch, Seeds.Fusion));
                        m.Head.train();
                        m.Progress = new EpochProgress("stage2", epoch, data.BatchesPerEpoch, lr, m == members[0] ? observer : SilentObserver.Instance);
                    }
                    if (c0.ShiftBn) backbone.train(); else backbone.eval();
                    var clock = Stopwatch.StartNew();
                    foreach (var (tail, headSide) in data.Epoch(epoch, fuse: fused.Count > 0))
                    {
                        using var t = tail;
                        using var h = headSide;
                        using var scope = NewDisposeScope();
                        Tensor tailMap;
                        Tensor? headMap = null;
                        using (no_grad())
                        {
                            using var before = twoStates ? BnState.Capture(bn) : null;
                            tailMap = backbone.call(t.Images);
                            if (twoStates) plainState!.FollowTailUpdate(bn, before!);
                            if (h is not null) headMap = backbone.call(h.Images);
                        }
                        foreach (var m in members)
                        {
                            Tensor features;
                            using (no_grad())
                                features = m.Rho == 0 ? tailMap : m.Fusion.Fuse(tailMap, headMap!, m.FusionRng, backbone.Experts).Fused;
                            var l = m.Loss.Forward(m.Head, features, t.Labels);
                            m.Optimizer.zero_grad();
                            l.backward();
                            m.Optimizer.step();
                            m.Progress!.Add(l.item<float>(), (int)t.Labels.shape[0]);
                        }
                        cancel.ThrowIfCancellationRequested();
                    }
                    trainSeconds += clock.Elapsed.TotalSeconds;
                    clock.Restart();
                    bool evaluate = c0.ShouldEvaluate(epoch);
                    // Evaluate and checkpoint each BN state's members with that state loaded into the backbone.
                    using var fusedState = twoStates ? BnState.Capture(bn) : null;
                    foreach (var (group, state) in new[] { (plain, plainState), (fused, fusedState) })
                    {
                        if (group.Count == 0) continue;
                        state?.Restore(bn);
                        var heads = group.Select(m => m.Head).ToList();
                        var test = evaluate ? Evaluator.EvaluateHeads(backbone, heads, data.Test, splits.NumClasses, splits.Groups) : null;
                        var val = evaluate && data.Validation is { } v ? Evaluator.EvaluateHeads(backbone, heads, v, splits.NumClasses, splits.Groups) : null;
                        double secs = clock.Elapsed.TotalSeconds;
                        for (int k = 0; k < group.Count; k++)
                        {
                            var m = group[k];
                            m.Loop.Complete(epoch, c0.Epochs, lr, m.Progress!.MeanLoss, m.Progress.Seconds, m.Progress.Images, test?[k], secs,
                                template with { Config = JsonSerializer.SerializeToElement(m.Config, AtomicFile.Json) }, backbone, m.Head, m.Optimizer, val?[k]);
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

        var rows = members.Select(m =>
        {
            var metrics = m.Run.ReadMetrics();
            return new SweepRow(m.Rho, m.Run.Path, metrics.FinalValidation, metrics.Final, metrics.SelectedEpoch, metrics.SelectedValidation, metrics.SelectedTest);
        }).ToList();
        var pick = rows.Where(r => r.FinalValidation is not null).OrderByDescending(r => r.FinalValidation!.Top1).ThenBy(r => r.Rho).FirstOrDefault();
        string? selectedCheckpoint = null;
        if (pick is not null)
        {
            selectedCheckpoint = Path.Combine(outDir, "selected.ckpt");
            var source = Path.Combine(pick.RunFolder, "last.ckpt");
            AtomicFile.Write(selectedCheckpoint, s => { using var f = File.OpenRead(source); f.CopyTo(s); });
        }
        var result = new SweepResult
        {
            Rows = rows, SelectedRho = pick?.Rho, SelectedCheckpoint = selectedCheckpoint,
            SelectedBy = pick is null ? "none: no validation split (pass a validation size > 0)" : "validation top-1 at the final epoch",
            ValidationNote = validationNote, Dataset = splits.Name, From = fromPath, Epochs = c0.Epochs,
            WallSeconds = wall.Elapsed.TotalSeconds, TrainSeconds = trainSeconds, EvalSeconds = evalSeconds,
        };
        AtomicFile.WriteJson(Path.Combine(outDir, "sweep.json"), result);
        return result;
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

        public static BnState Capture(IReadOnlyList<BatchNorm> bn)
        {
            using var _ = no_grad();
            return new BnState(
                bn.Select(b => b.running_mean!.clone().DetachFromDisposeScope()).ToArray(),
                bn.Select(b => b.running_var!.clone().DetachFromDisposeScope()).ToArray(),
                bn.Select(b => b.num_batches_tracked!.clone().DetachFromDisposeScope()).ToArray());
        }

        public void Restore(IReadOnlyList<BatchNorm> bn)
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
        public void FollowTailUpdate(IReadOnlyList<BatchNorm> bn, BnState before)
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
