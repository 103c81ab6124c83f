using H2T.Data;
using H2T.Evaluation;
using H2T.Models;
using H2T.Runs;
using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>The members trained under one BatchNorm state: those without fusion (the tail side only) or those with
/// it.</summary>
internal sealed record StateGroup(bool Fused, IReadOnlyList<ClassifierHead> Heads);

/// <summary>
/// Where stage II's classifiers get their features: the seam of <see cref="StageTwoEngine"/>. A source hands out each
/// epoch's paired batches (tail side, and head side when a member fuses) as features the heads take, owns the
/// backbone's BatchNorm state(s) and evaluates each group of heads with its state in the backbone.
/// <list type="bullet">
/// <item><see cref="BackbonePass"/> (<c>feature_cache: off</c>): a frozen-backbone pass per batch, shift-BN following
/// the batches; the exact path.</item>
/// <item><see cref="RecordedFeatures"/> (<c>pooled</c>): the exact path's first epochs recorded as pooled vectors,
/// then replayed; test and validation features computed once per BatchNorm state.</item>
/// <item><see cref="CachedFeatures"/> (<c>maps</c>): the final maps of a few augmented views of every image computed
/// once (<see cref="FeatureCache"/>), BatchNorm re-estimated once per side.</item>
/// </list>
/// A new source is a class here and a line in <see cref="Create"/>.
/// </summary>
internal interface IFeatureSource : IDisposable
{
    /// <summary>A member of the given group was resumed, and its checkpoint's BatchNorm state is in the
    /// backbone.</summary>
    void MemberResumed(bool fused) { }

    /// <summary>Readies the source for training (builds a cache); called once, when epochs remain.</summary>
    void Prepare(ITrainingObserver observer, CancellationToken cancel);

    /// <summary>What the source did, for a member's log (after <see cref="Prepare"/>); null: nothing to say.</summary>
    string? Describe(bool fusedMember) => null;

    /// <summary>Seconds <see cref="Prepare"/> spent (counted as training).</summary>
    double BuildSeconds => 0;

    int BatchesPerEpoch { get; }

    /// <summary>An epoch's paired batches; each batch's Images are the features the heads take. The consumer disposes
    /// them.</summary>
    IEnumerable<BatchPair> Epoch(int epoch);

    /// <summary>For each group: its BatchNorm state loaded into the backbone, its heads evaluated on test and
    /// validation
    /// (when <paramref name="evaluate"/>), then <paramref name="complete"/> called while that state is loaded (so the
    /// group's checkpoints carry it). Training then continues from the state it had.</summary>
    void Evaluate(bool evaluate, IReadOnlyList<StateGroup> groups, Action<int, EvaluationResult[]?,
        EvaluationResult[]?> complete);

    static IFeatureSource Create(Backbone backbone, DatasetSplits splits, StageTwoConfig shared, Device device,
        string folder, bool anyPlain, bool anyFused) =>
        shared.FeatureCache switch
        {
            FeatureCacheMode.Off => new BackbonePass(backbone, splits, shared, device, anyPlain, anyFused),
            FeatureCacheMode.Pooled => new RecordedFeatures(backbone, splits, shared, device, anyPlain, anyFused),
            _ => new CachedFeatures(backbone, splits, shared, device, folder, anyPlain, anyFused),
        };
}

/// <summary>
/// The exact path: the frozen backbone forwards every batch. With shift-BN it runs in train mode, so each batch is
/// normalised by its own statistics and the running statistics follow the batches. A rho = 0 member forwards only the
/// tail side, a fused member the tail then the head side, so their running statistics differ: when both kinds train,
/// the rho = 0 state is carried apart. BN's update r' = (1 - m) r + m b is linear, so after the tail forward moved the
/// shared state from S to T, the rho = 0 state moves from S0 to T + (1 - m)(S0 - S) without another forward.
/// </summary>
internal sealed class BackbonePass : IFeatureSource
{
    readonly Backbone backbone;
    readonly List<BatchNorm> bn;
    readonly StageTwoData data;
    readonly bool shiftBn, fuse, twoStates;
    BnState? plainState;

    public BackbonePass(Backbone backbone, DatasetSplits splits, StageTwoConfig shared, Device device, bool anyPlain,
        bool anyFused)
    {
        this.backbone = backbone;
        shiftBn = shared.ShiftBn;
        fuse = anyFused;
        twoStates = shared.ShiftBn && anyPlain && anyFused;
        bn = [.. backbone.modules().OfType<BatchNorm>()];
        if (twoStates && bn.Count == 0 && backbone.named_buffers().Any(b => b.name.EndsWith("running_mean",
            StringComparison.Ordinal)))
            throw new NotSupportedException(
                $"{backbone.Architecture}: its normalisation layers are not BatchNorm modules; sweep rho = 0 apart " +
                $"from rho > 0");
        data = StageTwoData.Create(splits, shared, device);
    }

    public int BatchesPerEpoch => data.BatchesPerEpoch;

    /// <summary>The run's loaders (<see cref="RecordedFeatures"/> reads the test and validation ones).</summary>
    public StageTwoData Data => data;

    public void MemberResumed(bool fused)
    {
        if (!twoStates || fused) return;
        plainState?.Dispose();
        plainState = BnState.Capture(bn);
    }

    // A fresh start: both states are the stage-I statistics.
    public void Prepare(ITrainingObserver observer, CancellationToken cancel)
    {
        if (twoStates) plainState ??= BnState.Capture(bn);
    }

    public IEnumerable<BatchPair> Epoch(int epoch)
    {
        // Evaluation leaves the backbone in eval mode; set its training mode once per epoch.
        if (shiftBn) backbone.train(); else backbone.eval();
        foreach (var (t, h) in data.Epoch(epoch, fuse))
        {
            Tensor tail;
            Tensor? head = null;
            using (no_grad())
            using (NewDisposeScope())
            {
                using var before = twoStates ? BnState.Capture(bn) : null;
                tail = backbone.call(t.Images).DetachFromDisposeScope();
                if (twoStates) plainState!.FollowTailUpdate(bn, before!);
                if (h is not null) head = backbone.call(h.Images).DetachFromDisposeScope();
            }
            // The images are done with; the labels move into the feature batches.
            t.Images.Dispose();
            h?.Images.Dispose();
            yield return new BatchPair(new Batch(tail, t.Labels, t.Indices), h is null ? null : new Batch(head!,
                h.Labels, h.Indices));
        }
    }

    public void Evaluate(bool evaluate, IReadOnlyList<StateGroup> groups, Action<int, EvaluationResult[]?,
        EvaluationResult[]?> complete)
    {
        using var fusedState = twoStates ? BnState.Capture(bn) : null;
        for (int g = 0; g < groups.Count; g++)
        {
            if (twoStates) (groups[g].Fused ? fusedState! : plainState!).Restore(bn);
            var test = evaluate ? Evaluator.EvaluateHeads(backbone, groups[g].Heads, data.Test, data.NumClasses,
                data.Groups) : null;
            var val = evaluate && data.Validation is { } v ? Evaluator.EvaluateHeads(backbone, groups[g].Heads, v,
                data.NumClasses, data.Groups) : null;
            complete(g, test, val);
        }
        fusedState?.Restore(bn);
    }

    public void Dispose()
    {
        data.Dispose();
        plainState?.Dispose();
    }
}

/// <summary>
/// Stage II from features computed once (<see cref="FeatureCache"/>): pooled vectors or final maps. Without shift-BN
/// one cache serves every member: the backbone is the same map on both sides. With shift-BN the exact path
/// normalises each batch by its own statistics, so the tail side's features follow the balanced sampler's statistics
/// and the head side's the instance sampler's; its fused members are then evaluated with running statistics that
/// mixed both sides, and its rho = 0 members with the tail side's. The caches follow that: training views under the
/// tail side's statistics (and, for fused members, the head side's), test features under the tail side's (rho = 0)
/// and under the mean of the two (fused members; what re-estimating on the pairs gives, since train-mode BatchNorm
/// statistics depend on the batches only).
/// </summary>
internal sealed class CachedFeatures : IFeatureSource
{
    readonly Backbone backbone;
    readonly List<BatchNorm> bn;
    readonly DatasetSplits splits;
    readonly StageTwoConfig config;
    readonly Device device;
    readonly string folder;
    readonly bool anyPlain, anyFused;
    readonly ISampler tailSampler, headSampler;
    FeatureCache? plain, head, fusedEval;
    BnState? plainBn, fusedBn;

    public CachedFeatures(Backbone backbone, DatasetSplits splits, StageTwoConfig config, Device device, string folder,
        bool anyPlain, bool anyFused)
    {
        (this.backbone, this.splits, this.config, this.device, this.folder) = (backbone, splits, config, device,
            folder);
        (this.anyPlain, this.anyFused) = (anyPlain, anyFused);
        bn = [.. backbone.modules().OfType<BatchNorm>()];
        (tailSampler, headSampler) = StageTwoData.SamplersFor(splits, config);
    }

    IEnumerable<FeatureCache> All => new[] { plain, head, fusedEval }.OfType<FeatureCache>().Distinct();
    public double BuildSeconds => All.Sum(c => c.BuildSeconds);
    public int BatchesPerEpoch => (tailSampler.Length + config.Optim.BatchSize - 1) / config.Optim.BatchSize;

    /// <summary>The cache a group is evaluated (and, for rho = 0, trained) from.</summary>
    FeatureCache For(bool fusedMember) => (fusedMember ? fusedEval ?? plain : plain)!;

    public void Prepare(ITrainingObserver observer, CancellationToken cancel)
    {
        var c = config;
        plain = FeatureCache.Build(backbone, splits, c, device, folder, observer, cancel,
            FeatureCache.Statistics.TailSide,
            evalSets: anyPlain || !c.ShiftBn, name: "-tail");
        if (!c.ShiftBn || !anyFused) return;
        using var tailSide = BnState.Capture(bn);
        head = FeatureCache.Build(backbone, splits, c, device, folder, observer, cancel,
            FeatureCache.Statistics.HeadSide, evalSets: false, name: "-head");
        using var headSide = BnState.Capture(bn);
        BnState.Mean(bn, tailSide, headSide);
        fusedEval = FeatureCache.Build(backbone, splits, c, device, folder, observer, cancel,
            FeatureCache.Statistics.Keep, trainViews: false, name: "-eval");
        fusedBn = BnState.Capture(bn);
        if (anyPlain) plainBn = tailSide.Copy();
    }

    public string? Describe(bool fusedMember)
    {
        var mine = For(fusedMember);
        return $"stage2 feature cache: {mine.Views} view(s), {mine.RowBytes} bytes per map, " +
            $"{All.Sum(x => x.TotalBytes) / 1048576.0:F1} MiB, built in {BuildSeconds:F1}s" +
               (!config.ShiftBn ? "" : fusedMember
                   ? " (BatchNorm statistics re-estimated on each side, the tail side's views under the balanced " +
                       "sampler's, the head side's under the instance sampler's, test features under their mean; " +
                       "then frozen)"
                   : " (BatchNorm statistics re-estimated on the balanced sampler, then frozen)");
    }

    public IEnumerable<BatchPair> Epoch(int epoch)
    {
        int batch = config.Optim.BatchSize;
        if (!anyFused || head is null) return plain!.Epoch(tailSampler, headSampler, batch, epoch, anyFused, device);
        return plain!.Epoch(tailSampler, headSampler, batch, epoch, fuse: true, device, readHead: false)
            .Zip(head.Epoch(tailSampler, headSampler, batch, epoch, fuse: true, device, readTail: false), (t,
                h) => new BatchPair(t.First, h.First));
    }

    public void Evaluate(bool evaluate, IReadOnlyList<StateGroup> groups, Action<int, EvaluationResult[]?,
        EvaluationResult[]?> complete)
    {
        int evalBatch = Math.Max(config.Optim.BatchSize, 256);
        for (int g = 0; g < groups.Count; g++)
        {
            (groups[g].Fused ? fusedBn : plainBn)?.Restore(bn);
            var cache = For(groups[g].Fused);
            var heads = groups[g].Heads;
            var test = evaluate ? Evaluator.EvaluateHeadsOnMaps(heads, cache.Evaluation(validation: false, evalBatch,
                device), splits.NumClasses, splits.Groups) : null;
            var val = evaluate && cache.HasValidation
                ? Evaluator.EvaluateHeadsOnMaps(heads, cache.Evaluation(validation: true, evalBatch, device),
                    splits.NumClasses, splits.Groups) : null;
            complete(g, test, val);
        }
    }

    public void Dispose()
    {
        foreach (var c in All) c.Dispose();
        plainBn?.Dispose();
        fusedBn?.Dispose();
    }
}

/// <summary>
/// Stage II at a feature pass's cost, exactly where it can be (<c>feature_cache: pooled</c>). The first
/// <c>feature_cache_views</c> epochs of the exact path (<see cref="BackbonePass"/>: the same batches, augmentation,
/// train-mode BatchNorm with shift-BN, the rho = 0 state carried apart) are run once, up front, and each batch's
/// maps are kept only as pooled vectors: every stage-II method acts per channel on the final map, and global average
/// pooling commutes with that (<c>IStageTwoMethod.CommutesWithPooling</c>), so a head gets exactly what it would
/// from the maps. Test and validation features are computed once under each group's BatchNorm state as the recording
/// left it. Later epochs replay the recorded ones (epoch e plays recording e mod V) with the full batches' order and
/// the head side's pairing shuffled per epoch, so the pairs change as the exact path's do; the fusion draws are each
/// member's own per epoch as ever. With as many recorded epochs as epochs this is the exact path, evaluation at the
/// final epoch included; with fewer, the later epochs see repeated augmentations instead of fresh ones. Resident
/// memory: C fp32 values per recorded draw and per test or validation image.
/// </summary>
internal sealed class RecordedFeatures : IFeatureSource
{
    readonly Backbone backbone;
    readonly List<BatchNorm> bn;
    readonly BackbonePass pass;
    readonly StageTwoConfig config;
    readonly Device device;
    readonly bool anyPlain, anyFused;
    readonly int recordedEpochs;
    readonly BnState initial;
    readonly List<(Tensor X, Tensor Y)[]> tails = [], heads = [];
    readonly Dictionary<bool, (List<(Tensor X, Tensor Y)> Test, List<(Tensor X,
        Tensor Y)>? Validation)> evaluation = [];
    readonly Dictionary<bool, BnState> states = [];
    double buildSeconds, recordSeconds;

    public RecordedFeatures(Backbone backbone, DatasetSplits splits, StageTwoConfig config, Device device,
        bool anyPlain, bool anyFused)
    {
        (this.backbone, this.config, this.device, this.anyPlain, this.anyFused) = (backbone, config, device, anyPlain,
            anyFused);
        bn = [.. backbone.modules().OfType<BatchNorm>()];
        recordedEpochs = Math.Min(config.ViewsOrDefault, config.Epochs);
        // The stage-I statistics, before any member's resume loads its own: the recording starts from them every time,
        // so a resumed run replays what the uninterrupted one recorded.
        initial = BnState.Capture(bn);
        pass = new BackbonePass(backbone, splits, config, device, anyPlain, anyFused);
    }

    StageTwoData Data => pass.Data;

    public int BatchesPerEpoch => pass.BatchesPerEpoch;
    public double BuildSeconds => buildSeconds;

    public void Prepare(ITrainingObserver observer, CancellationToken cancel)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        initial.Restore(bn);
        pass.MemberResumed(fused: false); // the rho = 0 state starts from the stage-I statistics too
        pass.Prepare(observer, cancel);
        observer.Message(
            $"pooled features: recording {recordedEpochs} epoch(s) of {pass.BatchesPerEpoch} paired batches, then " +
            $"the test" +
                         (Data.Validation is null ? "" : " and validation") + " features under each BatchNorm state");
        for (int e = 0; e < recordedEpochs; e++)
        {
            var tail = new List<(Tensor, Tensor)>();
            var head = new List<(Tensor, Tensor)>();
            foreach (var pair in pass.Epoch(e))
            {
                using (pair)
                {
                    tail.Add(Pooled(pair.First));
                    if (pair.Second is { } h) head.Add(Pooled(h));
                }
                cancel.ThrowIfCancellationRequested();
            }
            tails.Add([.. tail]);
            heads.Add([.. head]);
        }
        recordSeconds = clock.Elapsed.TotalSeconds;
        // The groups' states as the recording left them: fused members see the shared modules' state, rho = 0 ones
        // the state carried apart (the same one when only one kind trains).
        foreach (var fused in Kinds.Where(f => f ? anyFused : anyPlain))
        {
            pass.Evaluate(false, [new StateGroup(fused, [])], (_, _, _) =>
            {
                states[fused] = BnState.Capture(bn);
                evaluation[fused] = (Features(Data.Test, cancel), Data.Validation is { } v ? Features(v,
                    cancel) : null);
            });
        }
        buildSeconds = clock.Elapsed.TotalSeconds;
    }

    static readonly bool[] Kinds = [false, true];

    static (Tensor, Tensor) Pooled(Batch b)
    {
        using var _ = no_grad();
        return (ClassifierHead.Pool(b.Images).DetachFromDisposeScope(), b.Labels.clone().DetachFromDisposeScope());
    }

    List<(Tensor X, Tensor Y)> Features(BatchLoader loader,
        CancellationToken cancel) => Evaluator.PooledFeatures(backbone, loader, cancel);

    public string? Describe(bool fusedMember) =>
        $"stage2 pooled features: {recordedEpochs} recorded epoch(s) of the exact path's batches replayed over " +
            $"{config.Epochs}, " +
        $"{backbone.FeatureChannels} fp32 values per draw, {RecordedMiB():F1} MiB, built in {buildSeconds:F1}s " +
        $"({recordSeconds:F1}s recording, {buildSeconds - recordSeconds:F1}s test and validation features)" +
        (config.ShiftBn ?
            " (BatchNorm in train mode while recording, as the exact path; test features under the state it left)" :
            "");

    double RecordedMiB() => tails.Concat(heads).SelectMany(x => x).Concat(evaluation.Values.SelectMany(v =>
        v.Test.Concat(v.Validation ?? [])))
        .Sum(t => t.X.NumberOfElements * 4.0) / 1048576.0;

    public IEnumerable<BatchPair> Epoch(int epoch)
    {
        int r = epoch % recordedEpochs;
        var tail = tails[r];
        var head = heads[r];
        int[] tailOrder = [.. Enumerable.Range(0, tail.Length)], headOrder = [.. Enumerable.Range(0, head.Length)];
        if (epoch >= recordedEpochs)
        {
            // A replay: shuffle the full batches (a short last batch stays last, paired with the other short one).
            var rng = new Random(Seeds.Derive(config.Seed, epoch, Seeds.ReplayOrder));
            Shuffle(tailOrder, FullBatches(tail), rng);
            Shuffle(headOrder, FullBatches(head), rng);
        }
        for (int k = 0; k < tail.Length; k++)
        {
            var (tx, ty) = tail[tailOrder[k]];
            Batch? h = null;
            if (head.Length > 0)
            {
                var (hx, hy) = head[headOrder[k]];
                h = Handed(hx, hy);
            }
            yield return new BatchPair(Handed(tx, ty), h);
        }
    }

    /// <summary>A batch over stored tensors that the consumer may dispose: new handles, the storage kept.</summary>
    Batch Handed(Tensor x, Tensor y) =>
        new(x.device == device ? x.alias() : x.to(device), y.device == device ? y.alias() : y.to(device),
            new int[x.shape[0]]);

    static int FullBatches((Tensor X, Tensor Y)[] batches) =>
        batches.Length > 0 && batches[^1].X.shape[0] < batches[0].X.shape[0] ? batches.Length - 1 : batches.Length;

    static void Shuffle(int[] order, int n, Random rng)
    {
        for (int i = n - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }

    public void Evaluate(bool evaluate, IReadOnlyList<StateGroup> groups, Action<int, EvaluationResult[]?,
        EvaluationResult[]?> complete)
    {
        for (int g = 0; g < groups.Count; g++)
        {
            bool fused = groups[g].Fused;
            states[fused].Restore(bn);
            var (test, val) = evaluation[fused];
            IEnumerable<Batch> Batches(List<(Tensor X, Tensor Y)> set) => set.Select(b => Handed(b.X, b.Y));
            var t = evaluate ? Evaluator.EvaluateHeadsOnMaps(groups[g].Heads, Batches(test), Data.NumClasses,
                Data.Groups) : null;
            var v = evaluate && val is not null ? Evaluator.EvaluateHeadsOnMaps(groups[g].Heads, Batches(val),
                Data.NumClasses, Data.Groups) : null;
            complete(g, t, v);
        }
    }

    public void Dispose()
    {
        foreach (var (x,
            y) in tails.Concat(heads).SelectMany(b => b).Concat(evaluation.Values.SelectMany(v =>
            v.Test.Concat(v.Validation ?? []))))
        {
            x.Dispose();
            y.Dispose();
        }
        foreach (var s in states.Values) s.Dispose();
        initial.Dispose();
        pass.Dispose();
    }
}

/// <summary>A copy of every BatchNorm running mean / variance / batch count.</summary>
internal sealed class BnState : IDisposable
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
        static Tensor[] Clone(Tensor[] ts) => [.. ts.Select(t => t.clone().DetachFromDisposeScope())];
        return new BnState(Clone(means), Clone(vars), Clone(counts));
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
            double keep = 1 - (bn[i].momentum ??
                throw new NotSupportedException("BatchNorm with momentum None (cumulative average) in a sweep"));
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
