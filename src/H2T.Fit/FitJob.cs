using System.Text.Json;
using H2T.Data;
using H2T.Evaluation;
using H2T.Interop;
using H2T.Runs;
using H2T.Settings;
using H2T.Training;
using TorchSharp;

namespace H2T.Fit;

/// <summary>
/// <c>h2t fit</c>, the library's one call from a folder of long-tailed images to an evaluated, exported model:
/// read and check the data, split it, plan within the time limit by measuring, stage I with LIFT's recipe, a stage-II
/// sweep with H2T on frozen pooled features, the choice on validation, the run page, the ONNX model, the model card
/// and a summary. Each step's output is kept in the job folder, so <see cref="FitOptions.Resume"/> (or a second run
/// after Ctrl-C) continues from the first unfinished step; one process at a time may write the folder.
/// </summary>
public static class FitJob
{
    /// <summary>The folder's parts.</summary>
    public const string DataFolder = "data", PlanFile = "plan.json", StateFile = "state.json",
        StageOneFolder = "stage1", SweepFolder = "stage2", ProbeFolder = "probe", ModelFile = "model.onnx",
        CardFile = "MODEL_CARD.md", SummaryFile = "summary.json", PageFile = "report.html";

    const string StepCheck = "checking the data", StepPlan = "planning", StepOne = "stage I", StepSweep = "stage II",
        StepFinish = "report, export";

    /// <summary>Runs (or resumes) the job; returns its summary. Cancelling keeps every finished step and the
    /// trainers' last checkpoints. Bad input is refused before the job folder is made: nothing is left
    /// behind.</summary>
    public static FitResult Run(FitOptions options, torch.Device device, IFitObserver? observer = null,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(device);
        observer ??= SilentFitObserver.Instance;
        options.Validate();
        var backbone = BackboneFor(options);
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Out));
        var source = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Data));
        if (root == source || root.StartsWith(source + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ConfigException(
                $"out {root}: inside the data ({source}); its folders would be read as classes: give another --out",
                "out");
        var dataDir = Path.Combine(root, DataFolder);
        bool hasJob = File.Exists(Path.Combine(dataDir, Manifest.ClassesFile));
        if (hasJob && !options.Resume)
            throw new ConfigException(
                $"{root}: holds a fit job already; add --resume to continue it, or give another --out", "out");
        if (!hasJob && Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root)
                .Any(e => Path.GetFileName(e) is not (".lock" or StateFile or ProbeFolder)))
            throw new ConfigException($"{root}: exists and holds other files: give a new or empty --out", "out");
        var state = hasJob ? FitState.Read(root) : null;
        if (state is not null && !SameData(state.Data, source))
            throw new ConfigException(
                $"{root}: its job was fitted on {state.Data}, not {source}; give another --out", "data");
        state ??= new FitState { Data = source, Started = DateTimeOffset.Now };
        var tracker = new FitTracker(observer, options.TimeLimit, TimeSpan.FromSeconds(state.SpentSeconds));
        // The job's pixel limit is the decoder's for every step (the audit's, stage I's, stage II's, the export's).
        long limit = ImageDecoder.MaxPixels;
        ImageDecoder.MaxPixels = options.MaxPixels;
        void Save()
        {
            if (File.Exists(Path.Combine(dataDir, Manifest.ClassesFile)))
                (state = state! with { SpentSeconds = tracker.Elapsed.TotalSeconds }).Write(root);
        }
        try
        {
            return Steps(options, backbone, root, device, observer, tracker, Save, cancel);
        }
        finally
        {
            Save();
            ImageDecoder.MaxPixels = limit;
        }
    }

    static FitResult Steps(FitOptions options, string backbone, string root, torch.Device device,
        IFitObserver observer, FitTracker tracker, Action save, CancellationToken cancel)
    {
        var dataDir = Path.Combine(root, DataFolder);
        // Until the plan is measured, the steps' shares of the budget: what the plans here usually take.
        double b = options.TimeLimit.TotalSeconds;
        tracker.Steps([(StepCheck, 0.03 * b), (StepPlan, 0.07 * b), (StepOne, 0.7 * b), (StepSweep, 0.12 * b),
            (StepFinish, 0.05 * b)]);

        // 1. Read and check the data, then split it (kept: a resumed job trains on the same files). Nothing is
        // written until the data have passed.
        tracker.Begin(StepCheck);
        FitData data;
        RunFolderLock hold;
        if (File.Exists(Path.Combine(dataDir, Manifest.ClassesFile)))
        {
            hold = RunFolderLock.Acquire(root);
            data = FitData.Read(dataDir);
            observer.Message($"data: reusing the checked split in {dataDir}");
        }
        else
        {
            var set = ImageSetReader.Read(options.Data);
            observer.Message($"{set.Source}: {set.Layout}, {set.ClassNames.Count} classes");
            var audit = DataAudit.Run(set, new DataAuditOptions(MaxPixels: options.MaxPixels,
                SkipUndecodable: options.SkipUndecodable), new Direct(tracker.At), cancel);
            foreach (var line in audit.Lines()) observer.Message(line);
            foreach (var w in audit.Warnings) observer.Message($"warning: {w}");
            // The split's own seed (0, as the long-tail subsets'): another training seed trains on the same split.
            var split = FitSplit.Make(audit, 0);
            cancel.ThrowIfCancellationRequested();
            Directory.CreateDirectory(root);
            hold = RunFolderLock.Acquire(root);
            split.Write(dataDir);
            observer.Message(split.Describe());
            observer.Message("groups: " + GroupRule);
            data = FitData.Read(dataDir);
        }
        using var held = hold;
        var work = data.Workload;
        cancel.ThrowIfCancellationRequested();

        // 2. The plan: measured once, then kept.
        tracker.Begin(StepPlan);
        var planPath = Path.Combine(root, PlanFile);
        FitPlan plan;
        if (File.Exists(planPath))
        {
            plan = JsonSerializer.Deserialize<FitPlan>(File.ReadAllText(planPath), AtomicFile.Json)
                ?? throw new InvalidDataException($"{planPath}: empty");
            observer.Message($"plan: reusing {planPath}");
            foreach (var change in Changed(options, plan))
                observer.Message($"warning: --resume keeps the job's plan: {change} (give another --out to plan anew)");
        }
        else
        {
            var probe = Path.Combine(root, ProbeFolder);
            try
            {
                var probeData = FitPlanner.WriteProbeData(dataDir, probe, options.BatchSize, options.Seed);
                plan = FitPlanner.Plan(options, work, backbone, probeData, probe, () => tracker.Elapsed.TotalSeconds,
                    device, observer.Message, cancel);
                AtomicFile.WriteJson(planPath, plan);
            }
            finally
            {
                try { if (Directory.Exists(probe)) Directory.Delete(probe, true); }
                catch (IOException) { }
            }
        }
        observer.Message($"plan: {plan.Describe()}");
        foreach (var why in plan.Why) observer.Message($"  because {why}");
        observer.Message($"  estimated {FitKeys.Duration(TimeSpan.FromSeconds(plan.EstimatedTotalSeconds))} of " +
            $"the {FitKeys.Duration(options.TimeLimit)} budget");
        tracker.Steps([(StepOne, plan.StageOneSeconds), (StepSweep, plan.SweepSeconds),
            (StepFinish, plan.FinishSeconds)]);
        save();

        // 3. Stage I (resumes from its last checkpoint).
        tracker.Begin(StepOne);
        var s1 = new RunFolder(Path.Combine(root, StageOneFolder));
        var m1 = s1.ReadMetrics() is { Completed: true } finished ? finished
            : StageOneTrainer.Run(StageOne(plan, dataDir), s1, device, tracker.Training(), resume: true, cancel);
        cancel.ThrowIfCancellationRequested();

        // 4. Stage II: cRT at rho 0 and H2T at the other ratios, on pooled features of the frozen network.
        tracker.Begin(StepSweep);
        var sweepDir = Path.Combine(root, SweepFolder);
        var sweep = File.Exists(SweepResult.PathIn(sweepDir)) ? SweepResult.Read(sweepDir)
            // The data as stage I's checkpoint records it: normalised as the pretrained network was trained.
            : StageTwoSweep.Run(s1.LastCheckpoint, Sweep(plan), sweepDir, device, tracker.Training(), resume: true,
                cancel: cancel);
        cancel.ThrowIfCancellationRequested();

        // 5. The choice on validation, the page, the model, the card.
        tracker.Begin(StepFinish);
        var result = FitFinish.Write(options, plan, data, root, s1, m1, sweep, observer, tracker.At,
            () => tracker.Elapsed.TotalSeconds);
        tracker.At(1);
        save();
        return result;
    }

    /// <summary>The options a resumed job was given that its kept plan does not follow, a phrase each.</summary>
    internal static IEnumerable<string> Changed(FitOptions o, FitPlan plan)
    {
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        if (Math.Abs(o.TimeLimit.TotalSeconds - plan.BudgetSeconds) > 1)
            yield return $"time limit {FitKeys.Duration(o.TimeLimit)}, planned for " +
                FitKeys.Duration(TimeSpan.FromSeconds(plan.BudgetSeconds));
        if (o.Epochs is { } e && e != plan.Epochs) yield return $"epochs {e}, planned {plan.Epochs}";
        if (o.Tuning is { } t && t != plan.Tuning) yield return $"tuning {t}, planned {plan.Tuning}";
        if (o.ImageSize is { } z && z != plan.ImageSize) yield return $"image size {z}, planned {plan.ImageSize}";
        if (o.Seed != plan.Seed) yield return $"seed {o.Seed}, planned {plan.Seed}";
        if (o.BatchSize != plan.BatchSize) yield return $"batch size {o.BatchSize}, planned {plan.BatchSize}";
        if (!o.Rhos.SequenceEqual(plan.Rhos))
            yield return $"rho {string.Join(",", o.Rhos.Select(r => r.ToString(ci)))}, planned " +
                string.Join(",", plan.Rhos.Select(r => r.ToString(ci)));
        if (o.Pretrained != plan.Pretrained) yield return $"pretrained {o.Pretrained}, planned {plan.Pretrained}";
    }

    /// <summary>How the head / medium / tail columns are made, as printed with the split.</summary>
    public const string GroupRule = "head / medium / tail by training images per class (over 100, 20 to 100, under " +
        "20) when that leaves no group empty, else by rank: the 30% most frequent classes are head, the 30% least " +
        "frequent tail (ClassGroups.Default; ten classes with falling counts keep the CIFAR-10-LT 3 / 4 / 3)";

    /// <summary>Progress reported on the caller's thread, in order (Progress&lt;T&gt; posts to the thread pool, so
    /// its reports can arrive late and out of order).</summary>
    sealed class Direct(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    static bool SameData(string recorded, string given) =>
        string.Equals(Path.GetFullPath(recorded).TrimEnd('/'), Path.GetFullPath(given).TrimEnd('/'),
            StringComparison.Ordinal);

    /// <summary>The architecture the pretrained weights fill: what --backbone says, else what the weights' name says
    /// (<see cref="PretrainedBackbone.ArchitectureOf"/>).</summary>
    public static string BackboneFor(FitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Backbone ?? PretrainedBackbone.ArchitectureOf(options.Pretrained) ?? throw new ConfigException(
            $"pretrained {options.Pretrained}: its name does not say which architecture its weights fill: give " +
            "--backbone (e.g. vit_b_16)", "backbone");
    }

    /// <summary>The job's data: the checked split, decoded at the plan's size.</summary>
    public static DataConfig Data(FitPlan plan, string dataDir)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new DataConfig(Dataset: "manifest", DataPath: Path.GetFullPath(dataDir), ImbFactor: 1,
            Resize: plan.ImageSize, ImageSize: plan.ImageSize == 0 ? 224 : plan.ImageSize);
    }

    /// <summary>Stage I as the plan has it, with LIFT's head and loss: what <c>h2t stage1</c> would run.</summary>
    public static StageOneConfig StageOne(FitPlan plan, string dataDir)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new StageOneConfig
        {
            Data = Data(plan, dataDir), Backbone = plan.Backbone, Pretrained = plan.Pretrained, Epochs = plan.Epochs,
            Classifier = "cosine", HeadInit = "class-mean", Loss = new LossConfig("logit-adjust"), MixupAlpha = 0,
            Tuning = plan.TuningKind, Trainable = plan.Tuning == FitTuning.LastStage ? ["layer4"] : null,
            Optim = new OptimConfig(Lr: plan.Lr, WeightDecay: 5e-4, BatchSize: plan.BatchSize),
            Schedule = new ScheduleConfig(ScheduleKind.Cosine), Seed = plan.Seed, EvalEvery = 0,
            Precision = MixedPrecisionOf(plan.Precision),
        };
    }

    /// <summary>The stage-II sweep: rho 0 (cRT, class-balanced re-training) and the H2T ratios, 10 epochs on
    /// pooled features, rho chosen on the job's validation split.</summary>
    public static SweepConfig Sweep(FitPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var two = new StageTwoConfig
        {
            Epochs = 10, Seed = plan.Seed, EvalEvery = 0, Precision = MixedPrecisionOf(plan.Precision),
            FeatureCache = FeatureCacheMode.Pooled,
            Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4, BatchSize: Math.Max(plan.BatchSize, 128)),
        };
        return new SweepConfig(two, [.. plan.Rhos.Where(r => r != 0).Prepend(0).Distinct()], 0);
    }

    static ComputePrecision MixedPrecisionOf(string name) =>
        name == "bf16" ? ComputePrecision.Bf16 : ComputePrecision.Fp32;
}

/// <summary>state.json: what the job has spent, so a resumed job's bar and budget count the time before.</summary>
public sealed record FitState
{
    public required string Data { get; init; }
    public DateTimeOffset Started { get; init; }
    public double SpentSeconds { get; init; }

    public static FitState? Read(string root)
    {
        var path = Path.Combine(root, FitJob.StateFile);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<FitState>(File.ReadAllText(path), AtomicFile.Json); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a fit job's state ({e.Message})"); }
    }

    public void Write(string root) => AtomicFile.WriteJson(Path.Combine(root, FitJob.StateFile), this);
}

/// <summary>The job's checked split as its manifest has it: class names, counts per split, groups, and the
/// images' median shorter side (what the planner sizes candidates by).</summary>
public sealed record FitData(string Folder, IReadOnlyList<string> ClassNames, int[] Train, int[] Validation,
    int[] Test, string[] Groups, int MedianSide)
{
    public FitWorkload Workload => new(Train.Sum(), Validation.Sum(), Test.Sum(), ClassNames.Count, MedianSide);

    public static FitData Read(string dataDir)
    {
        var m = Manifest.Read(dataDir);
        int k = m.ClassNames.Count;
        // The median of a spread sample's headers (no decoding).
        var sample = Enumerable.Range(0, Math.Min(32, m.Train.Count)).Select(i => m.Train.Paths[i * m.Train.Count /
            Math.Min(32, m.Train.Count)]).ToList();
        int side = sample.Count == 0 ? 224 : sample.Select(p =>
        {
            var (w, h) = ImageDecoder.Probe(p);
            return Math.Min(w, h);
        }).Order().ElementAt(sample.Count / 2);
        return new FitData(dataDir, m.ClassNames, m.Train.CountPerClass(k), m.Validation.CountPerClass(k),
            m.Test.CountPerClass(k), [.. Enumerable.Range(0, k).Select(m.Groups.GroupOf)], side);
    }
}
