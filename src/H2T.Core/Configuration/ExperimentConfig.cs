using System.Globalization;
using H2T.Data;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using H2T.Settings;

namespace H2T.Configuration;

/// <summary>Which run a config describes: a stage (the reference's <c>mode</c> key) or a stage-II sweep (a stage-2
/// config whose <c>sweep.rho</c> lists the values).</summary>
public enum StageMode { StageOne, StageTwo, Sweep }

/// <summary>
/// Everything the flags, a config file and overrides say about a run, bound by <see cref="ReferenceConfig.Bind"/> into
/// the typed records and checked once: the data, the stage's settings (as a <see cref="Checked{T}"/> for the mode
/// bound), the run's name, and what to resume or start from.
/// </summary>
public sealed record ExperimentConfig
{
    public required StageMode Mode { get; init; }
    /// <summary>The reference's <c>name</c>: the default run folder is runs/&lt;name&gt;.</summary>
    public string? Name { get; init; }
    public DataConfig Data { get; init; } = new();
    /// <summary>Keys the config set for the data (stage II checks them against the stage-I checkpoint).</summary>
    public IReadOnlyList<ConfigEntry> DataEntries { get; init; } = [];
    /// <summary><c>num_classes</c>, checked against the dataset once it is loaded.</summary>
    public ConfigEntry? NumClasses { get; init; }
    /// <summary>The stage-I record (in stage II only its backbone and classifier names are read, for
    /// imports).</summary>
    public StageOneConfig StageOne { get; init; } = new();
    public StageTwoConfig StageTwo { get; init; } = new();
    /// <summary>The bound mode's config, checked: exactly one of these is set.</summary>
    public Checked<StageOneConfig>? CheckedStageOne { get; init; }
    public Checked<StageTwoConfig>? CheckedStageTwo { get; init; }
    public Checked<SweepConfig>? CheckedSweep { get; init; }
    /// <summary><c>val_per_class</c> when given (stage II: a validation split for choosing the epoch or rho).</summary>
    public int? ValidationPerClass { get; init; }
    /// <summary>Stage I: resume the run folder when it has a checkpoint. Stage II: the stage-I checkpoint (H2T.NET or
    /// PyTorch).</summary>
    public string? Resume { get; init; }
    /// <summary>The <c>backbone</c> entry, when the config set one (stage II checks it against the
    /// checkpoint).</summary>
    public ConfigEntry? BackboneEntry { get; init; }
    /// <summary>Reference keys accepted but without effect here, with the reason (printed once per run).</summary>
    public IReadOnlyList<string> Ignored { get; init; } = [];

    /// <summary>Checks <c>num_classes</c> against the loaded dataset.</summary>
    public void CheckNumClasses(int numClasses, string dataset)
    {
        if (NumClasses is { } e && e.Int() != numClasses)
            throw e.Error($"the config says {e.Int()} classes, but {dataset} has {numClasses}");
    }
}

/// <summary>
/// The one binder: every setting of a run, whether typed as a flag (<c>--rho 0.5</c>), written in a YAML config
/// (<c>H2T: 0.5</c>, the reference's keys) or given as an override (<c>H2T=0.5</c>), is a <see cref="ConfigEntry"/>
/// bound
/// here through one name table (<see cref="Keys"/>: key, the stages it applies to, its flag). Binding parses types and
/// names only; the values are checked once, by the records' checks (<see cref="RunConfigChecks"/>) at the end of
/// <see cref="Bind"/>, and an error is reported at the file line, override or flag that set the value.
/// </summary>
public static class ReferenceConfig
{
    sealed class Builder(StageMode mode)
    {
        public StageMode Mode = mode;
        public string? Name;
        public DataConfig Data = new();
        public List<ConfigEntry> DataEntries = [];
        public ConfigEntry? NumClasses;
        public StageOneConfig One = new();
        public StageTwoConfig Two = new();
        public double[]? SweepRhos;
        public List<SweptOption> SweptOptions = [];
        public int? ValPerClass;
        public Dictionary<string, string> MethodOptions = new(StringComparer.Ordinal);
        public string? Resume;
        public (int, int)? HeadRange, MedRange, TailRange;
        public ConfigEntry? GroupKey;
        public bool? Mixup;
        public ConfigEntry? MixupKey;
        public double? Alpha;
        public bool? DualSample;
        public ConfigEntry? DualSampleKey;
        public List<string> Ignored = [];
        public ConfigEntry? ModeKey;
        public ConfigEntry? BackboneKey;
        public ConfigEntry? NumExpertsKey;
        /// <summary>The entry that last set each canonical key: where a failed check points.</summary>
        public Dictionary<string, ConfigEntry> Origins = new(StringComparer.Ordinal);
    }

    /// <summary>Where a key applies: stage I, stage II (single runs and sweeps), or sweeps only.</summary>
    [Flags] enum Stages { One = 1, Two = 2, Both = 3, Sweep = 4 }

    /// <param name="Sets">The canonical key the entry sets, when it is an alias (mix_fea sets H2T): checks name that
    /// one.</param>
    /// <param name="FlagStages">Where the flag exists, when fewer stages than the key (the key may sit in any
    /// config).</param>
    sealed record Key(string Name, Stages Stages, Action<Builder, ConfigEntry> Apply, string? Flag = null,
        string? Sets = null, Stages? FlagStages = null);

    // Before Keys: static fields initialise in text order.
    static NameTable<string> HeadInits { get; } = new("head_init",
        [("random", "random"), ("class-mean", "class-mean"), ("class_mean", "class-mean")]);

    static NameTable<string> Optimizers { get; } = new("optimizer", [("sgd", "sgd"), ("adamw", "adamw")]);

    static readonly Key[] Keys =
    [
        new("name", Stages.Both, (b, e) => b.Name = e.String()),
        new("mode", Stages.Both, (b, e) => { b.ModeKey = e; }),
        // data
        new("dataset", Stages.Both, (b, e) => { b.Data = b.Data with { Dataset = Named(e,
            DatasetCatalog.Aliases) }; b.DataEntries.Add(e); }, "--dataset"),
        new("data_path", Stages.Both, (b, e) => b.Data = b.Data with { DataPath = e.StringOrNull() }, "--data"),
        new("num_classes", Stages.Both, (b,
            e) => { if (e.Int() < 2) throw e.Error("at least 2 classes"); b.NumClasses = e; }),
        new("imb_factor", Stages.Both, (b,
            e) => { b.Data = b.Data with { ImbFactor = ImbFactor(e) }; b.DataEntries.Add(e); }, "--imb-factor"),
        new("imb_type", Stages.Both, (b, e) => { b.Data = b.Data with { ImbType = Named(e,
            ImbalanceTypes.Table) }; b.DataEntries.Add(e); }, "--imb-type"),
        new("lt_seed", Stages.Both, (b,
            e) => { b.Data = b.Data with { LongTailSeed = e.Int() }; b.DataEntries.Add(e); }, "--lt-seed"),
        new("val_per_class", Stages.Both, (b,
            e) => { b.ValPerClass = e.Int(); b.Data = b.Data with { ValidationPerClass = e.Int() }; },
            "--val-per-class"),
        new("image_size", Stages.Both, (b, e) => b.Data = b.Data with { ImageSize = e.Int() }, "--image-size"),
        new("resize", Stages.Both, (b, e) => b.Data = b.Data with { Resize = e.Int() }, "--resize"),
        new("head_class_idx", Stages.Both, (b, e) => { b.HeadRange = e.Range(); b.GroupKey = e; }),
        new("med_class_idx", Stages.Both, (b, e) => { b.MedRange = e.Range(); b.GroupKey = e; }),
        new("tail_class_idx", Stages.Both, (b, e) => { b.TailRange = e.Range(); b.GroupKey = e; }),
        // model
        new("backbone", Stages.Both, (b, e) => { b.One = b.One with { Backbone = Backbone(e) }; b.BackboneKey = e; },
            "--backbone"),
        new("classifier", Stages.Both, (b, e) =>
        {
            var kind = Classifier(e);
            b.One = b.One with { Classifier = kind };
            if (b.Mode != StageMode.StageOne) b.Two = b.Two with { Classifier = kind == "lws" ? "lws" : "keep" };
        }, "--classifier"),
        new("use_norm", Stages.Both, (b, e) => { if (e.Bool()) b.One = b.One with { Classifier = "cosine" }; },
            Sets: "classifier"),
        // RIDE's model keys: the expert count is the backbone's (ride_* and reslt_* have 3), checked in Finish.
        new("num_experts", Stages.Both, (b,
            e) => { if (e.Int() < 1) throw e.Error("at least 1 expert"); b.NumExpertsKey = e; }),
        new("reduce_dimension", Stages.Both, (b, e) =>
        {
            if (!e.Bool()) throw e.Error(
                "true: RIDE backbones here use RIDE's reduced widths (24/48 channels per expert)");
        }),
        new("use_experts", Stages.Both, (b, e) =>
        {
            if (!e.IsNull) throw e.Error("null: every expert is used (RIDE's expert routing is not built)");
        }),
        new("resume", Stages.Both, (b, e) => b.Resume = e.StringOrNull()),
        // Our keys: arithmetic and layout, pretrained weights, the part of the backbone that trains, loading.
        new("precision", Stages.Both, (b, e) =>
        {
            var p = PrecisionOf(e);
            b.One = b.One with { Precision = p };
            b.Two = b.Two with { Precision = p };
        }, "--precision"),
        new("memory_layout", Stages.Both, (b, e) =>
        {
            var l = Named(e, ComputeNames.Layouts);
            b.One = b.One with { Layout = l };
            b.Two = b.Two with { Layout = l };
        }, "--memory-layout"),
        new("prefetch", Stages.Both, (b,
            e) => { var n = e.Int(); b.One = b.One with { Prefetch = n }; b.Two = b.Two with { Prefetch = n }; },
            "--prefetch"),
        new("pretrained", Stages.One, (b, e) => b.One = b.One with { Pretrained = e.StringOrNull() }, "--pretrained"),
        new("trainable", Stages.One, (b, e) => b.One = b.One with { Trainable = e.IsNull ? null : e.Strings() },
            "--trainable"),
        // Light fine-tuning (LIFT's recipe, Shi et al., ICML 2024): which part trains, the classifier's start and
        // scale.
        new("tuning", Stages.One, (b, e) => b.One = b.One with { Tuning = Named(e, TuningNames.Names) }, "--tuning"),
        new("tuning_dim", Stages.One, (b, e) => b.One = b.One with { TuningDim = e.Int() }, "--tuning-dim"),
        new("head_init", Stages.One, (b, e) => b.One = b.One with { HeadInit = Named(e, HeadInits) }, "--head-init"),
        new("cosine_scale", Stages.One, (b, e) => b.One = b.One with { CosineScale = e.DoubleOrNull() },
            "--cosine-scale"),
        new("optimizer", Stages.Both, (b, e) => SetOptim(b, o => o with { Optimizer = Named(e, Optimizers) }),
            "--optimizer"),
        // optimisation
        new("lr", Stages.Both, (b, e) => SetOptim(b, o => o with { Lr = e.Double() }), "--lr"),
        new("batch_size", Stages.Both, (b, e) => SetOptim(b, o => o with { BatchSize = e.Int() }), "--batch-size"),
        new("weight_decay", Stages.Both, (b, e) => SetOptim(b, o => o with { WeightDecay = e.Double() }), "--wd"),
        new("momentum", Stages.Both, (b, e) => SetOptim(b, o => o with { Momentum = e.Double() }), "--momentum"),
        new("nesterov", Stages.One, (b, e) => SetOptim(b, o => o with { Nesterov = e.Bool() }), "--nesterov"),
        new("num_epochs", Stages.Both, (b,
            e) => { var n = e.Int(); b.One = b.One with { Epochs = n }; b.Two = b.Two with { Epochs = n }; },
            "--epochs"),
        new("seed", Stages.Both, (b,
            e) => { var s = e.Int(); b.One = b.One with { Seed = s }; b.Two = b.Two with { Seed = s }; }, "--seed"),
        new("eval_every", Stages.Both, (b,
            e) => { var s = e.Int(); b.One = b.One with { EvalEvery = s }; b.Two = b.Two with { EvalEvery = s }; },
            "--eval-every"),
        new("mixup", Stages.Both, (b, e) => { b.Mixup = e.Bool(); b.MixupKey = e; }, Sets: "alpha"),
        // The CLI's --mixup ALPHA: mixup on with that alpha, or off for 0.
        new("mixup_alpha", Stages.One, (b, e) =>
        {
            var a = e.Double();
            b.Mixup = a > 0;
            b.Alpha = a > 0 ? a : null;
            b.MixupKey = e;
        }, "--mixup", Sets: "alpha"),
        new("alpha", Stages.Both, (b, e) => b.Alpha = e.DoubleOrNull()),
        new("cmo.prob", Stages.One, (b, e) => SetCmo(b, c => c with { Probability = e.Double() }), "--cmo"),
        new("cmo.beta", Stages.One, (b, e) => SetCmo(b, c => c with { Beta = e.Double() })),
        new("cmo.start_data_aug", Stages.One, (b, e) => SetCmo(b, c => c with { StartEpoch = e.Int() })),
        new("cmo.end_data_aug", Stages.One, (b, e) => SetCmo(b, c => c with { EndMargin = e.Int() })),
        new("cmo.sampler", Stages.One, (b, e) => SetCmo(b,
            c => c with { Sampler = SamplerName(e) is var s && CmoConfig.SamplerNames.Contains(s) ? s :
            throw e.Error("reverse, balance or sqrt") })),
        new("lr_scheduler.type", Stages.Both, (b, e) => SetSchedule(b, s => s with { Kind = Named(e,
            ScheduleKinds.Table) }), "--schedule"),
        new("lr_scheduler.lr_factor", Stages.Two, (b, e) => b.Two = b.Two with { LrFactor = e.Double() },
            "--lr-factor"),
        new("lr_scheduler.lr_step", Stages.Both, (b, e) => SetSchedule(b, s => s with { Milestones = e.Ints() }),
            "--milestones"),
        new("lr_scheduler.warmup_epochs", Stages.Both, (b, e) => SetSchedule(b, s => s with { WarmupEpochs = e.Int() }),
            "--warmup"),
        new("lr_scheduler.gamma", Stages.Both, (b, e) => SetSchedule(b, s => s with { Gamma = e.Double() })),
        // samplers
        new("sampler.type", Stages.Both, (b, e) =>
        {
            var t = e.StringOrNull()?.Trim().ToLowerInvariant();
            if (t is not (null or "default" or "instance" or "weighted sampler" or "weighted_sampler"))
                throw e.Error("'weighted sampler' or 'default'");
            if (t is null or "default" or "instance") { b.One = b.One with { Sampler = "instance" }; b.Two =
                b.Two with { TailSampler = "instance" }; }
        }, Sets: "sampler.weighted_sampler.type"),
        new("sampler.weighted_sampler.type", Stages.Both, (b, e) =>
        {
            var s = SamplerName(e);
            b.One = b.One with { Sampler = s };
            b.Two = b.Two with { TailSampler = s };
        }, "--sampler"),
        new("sampler.dual_sample.enable", Stages.Both, (b, e) => { b.DualSample = e.Bool(); b.DualSampleKey = e; }),
        new("sampler.dual_sample.type", Stages.Both, (b, e) => b.Two = b.Two with { HeadSampler = SamplerName(e) },
            "--head-sampler", FlagStages: Stages.Two),
        // stage II: the methods (H2T.Fusion.StageTwoMethods' table); a method's own options are keys too (OptionKey)
        new("shift_bn", Stages.Two, (b, e) => b.Two = b.Two with { ShiftBn = e.Bool() }, "--shift-bn"),
        new("H2T", Stages.Two, (b, e) => b.Two = b.Two with { Rho = Rho(e) }, "--rho"),
        new("rho", Stages.Two, (b, e) => b.Two = b.Two with { Rho = Rho(e) }, Sets: "H2T"),
        new("mix_fea", Stages.Two, (b, e) => b.Two = b.Two with { Rho = Rho(e) }, Sets: "H2T"),
        new("fusion", Stages.Two, (b, e) => b.Two = b.Two with { Fusion = e.String().Trim().ToLowerInvariant() },
            "--fusion"),
        new("feature_cache", Stages.Two, (b, e) => b.Two = b.Two with { FeatureCache = Named(e,
            StageTwoConfig.FeatureCacheModes) }, "--feature-cache"),
        new("feature_cache_bn_batches", Stages.Two, (b, e) => b.Two = b.Two with { FeatureCacheBnBatches = e.Int() },
            "--cache-bn-batches"),
        new("feature_cache_views", Stages.Two, (b, e) => b.Two = b.Two with { FeatureCacheViews = e.Int() },
            "--cache-views"),
        new("feature_cache_storage", Stages.Two, (b,
            e) => b.Two = b.Two with { FeatureCacheStorage = e.String().Trim().ToLowerInvariant() }, "--cache-storage"),
        new("reinit_classifier", Stages.Two, (b, e) => b.Two = b.Two with { ReinitClassifier = e.Bool() }, "--reinit"),
        // a sweep: the rho values, a list like any other (start:stop:step, a comma list, or a YAML list)
        new("sweep.rho", Stages.Sweep, (b, e) => b.SweepRhos = e.Items is { } xs
            ? xs.Select(x => new ConfigEntry(e.Key, x, null, e.Where).Double()).ToArray()
            : ValueGrid.Parse(e.String(), "rho"), "--rho"),
        // losses (MisLAS writes its smoothing at the top level)
        new("loss.type", Stages.Both, (b, e) => SetLoss(b, l => l with { Type = LossName(e) }), "--loss"),
        new("loss.focal.gamma", Stages.Both, (b, e) => SetLoss(b, l => l with { FocalGamma = e.Double() })),
        new("loss.CB.beta", Stages.Both, (b, e) => SetLoss(b, l => l with { CbBeta = e.Double() })),
        new("loss.LDAM.max_m", Stages.Both, (b, e) => SetLoss(b, l => l with { LdamMaxMargin = e.Double() })),
        new("loss.LDAM.s", Stages.Both, (b, e) => SetLoss(b, l => l with { LdamScale = e.Double() })),
        new("loss.LDAM.reweight_epoch", Stages.Both, (b, e) => SetLoss(b,
            l => l with { DrwStartEpoch = e.Int() < 0 ? -1 : e.Int() }), "--drw"),
        new("loss.LA.tau", Stages.Both, (b, e) => SetLoss(b, l => l with { LogitAdjustTau = e.Double() })),
        new("loss.RIDE.additional_diversity_factor", Stages.Both, (b, e) => SetLoss(b,
            l => l with { RideDiversityFactor = e.Double() })),
        new("loss.RIDE.base_diversity_temperature", Stages.Both, (b, e) => SetLoss(b,
            l => l with { RideDiversityTemperature = e.Double() })),
        new("loss.RIDE.reweight_factor", Stages.Both, (b, e) => SetLoss(b,
            l => l with { RideReweightFactor = e.Double() })),
        new("loss.RIDE.reweight_epoch", Stages.Both, (b, e) => SetLoss(b,
            l => l with { DrwStartEpoch = e.Int() < 0 ? -1 : e.Int() }), Sets: "loss.LDAM.reweight_epoch"),
        new("loss.RIDE.max_m", Stages.Both, (b, e) => SetLoss(b, l => l with { LdamMaxMargin = e.Double() }),
            Sets: "loss.LDAM.max_m"),
        new("loss.RIDE.s", Stages.Both, (b, e) => SetLoss(b, l => l with { LdamScale = e.Double() }),
            Sets: "loss.LDAM.s"),
        new("loss.ResLT.beta", Stages.Both, (b, e) => SetLoss(b, l => l with { ResLtBeta = e.Double() })),
        new("loss.ResLT.medium_start", Stages.Both, (b, e) => SetLoss(b, l => l with { ResLtMediumStart = e.Int() })),
        new("loss.ResLT.tail_start", Stages.Both, (b, e) => SetLoss(b, l => l with { ResLtTailStart = e.Int() })),
        new("loss.GCL.noise_mul", Stages.Both, (b, e) => SetLoss(b, l => l with { GclNoiseMul = e.Double() })),
        new("loss.GCL.s", Stages.Both, (b, e) => SetLoss(b, l => l with { GclScale = e.Double() })),
        new("loss.GCL.max_m", Stages.Both, (b, e) => SetLoss(b, l => l with { GclMaxMargin = e.Double() })),
        new("loss.GCL.gamma", Stages.Both, (b, e) => SetLoss(b, l => l with { GclFocalGamma = e.DoubleOrNull() })),
        new("smooth_head", Stages.Both, (b, e) => SetLoss(b, l => l with { SmoothHead = e.Double() })),
        new("smooth_tail", Stages.Both, (b, e) => SetLoss(b, l => l with { SmoothTail = e.Double() })),
        new("shape", Stages.Both, (b, e) => SetLoss(b,
            l => l with { SmoothShape = e.String().Trim().ToLowerInvariant() })),
        new("power", Stages.Both, (b, e) => SetLoss(b, l => l with { SmoothPower = e.Double() })),
        // the reference's runtime keys: accepted, no effect here
        Ignore("print_freq", "progress is shown live"),
        Ignore("workers", "batches are assembled by H2T.NET's prefetching loader"),
        Ignore("log_dir", "logs and metrics go to the run folder (--out, default runs/<name>)"),
        Ignore("model_dir", "checkpoints go to the run folder (--out, default runs/<name>)"),
        Ignore("deterministic", "runs are always deterministic given the seed"),
        Ignore("world_size", "single process"),
        Ignore("rank", "single process"),
        Ignore("dist_url", "single process"),
        Ignore("dist_backend", "single process"),
        new("distributed", Stages.Both, (b,
            e) => { if (e.Bool()) throw e.Error("false: distributed training is not supported"); }),
        new("multiprocessing_distributed", Stages.Both, (b,
            e) => { if (e.Bool()) throw e.Error("false: distributed training is not supported"); }),
        new("gpu", Stages.Both, (b,
            e) => { if (!e.IsNull) throw e.Error("null (choose the device with --device cpu|cuda:N)"); }),
        // every stage-II method's own options, from the method table
        .. StageTwoMethods.OptionKeys.Select(k => new Key(k, Stages.Two, (b, e) => b.MethodOptions[k] = e.String())),
        // and every loss's that declares its own
        .. LossFactory.OptionKeys.Select(k => new Key(k, Stages.Both, (b, e) => SetLoss(b,
            l => l with { Options = MethodOptions.With(l.Options, k, e.String()) }))),
    ];

    static readonly Dictionary<string, Key> ByName = Keys.ToDictionary(k => k.Name, StringComparer.Ordinal);

    static Stages Wanted(StageMode mode) => mode switch
    {
        StageMode.StageOne => Stages.One,
        StageMode.StageTwo => Stages.Two,
        _ => Stages.Two | Stages.Sweep,
    };

    /// <summary>What <c>--sweep KEY=VALUES</c> stands for: the family of keys sweep.KEY (<see
    /// cref="AddSweptOption"/>).</summary>
    public const string SweptKeys = "sweep.KEY";

    /// <summary>The config key a flag stands for in a command of this mode (a sweep's --rho is sweep.rho, a single
    /// stage-II run's is H2T), or null for a flag without one (run options: --out, --resume, ...).</summary>
    public static string? FlagKey(StageMode mode, string flag)
    {
        if (flag == "--sweep" && mode == StageMode.Sweep) return SweptKeys;
        var want = Wanted(mode);
        // The most specific key first: a sweep-only key over a stage-II one.
        return Keys.Where(k => k.Flag == flag && ((k.FlagStages ?? k.Stages) & want) != 0).OrderByDescending(k =>
            k.Stages == Stages.Sweep).FirstOrDefault()?.Name;
    }

    /// <summary>Settings the environment gives, at the lowest precedence (a file, overrides and flags win): the old
    /// spelling of memory_layout, <c>H2T_CHANNELS_LAST=0</c> (once a process-wide switch), kept as an alias of
    /// <c>memory_layout: nchw</c>. The command line and each grid cell read them alike.</summary>
    public static IEnumerable<ConfigEntry> EnvironmentEntries()
    {
        if (Environment.GetEnvironmentVariable("H2T_CHANNELS_LAST") == "0")
            yield return new ConfigEntry("memory_layout", "nchw", null,
                "environment H2T_CHANNELS_LAST=0 (an alias of memory_layout: nchw)");
    }

    /// <summary>Every flag of a mode with the key it stands for.</summary>
    public static IReadOnlyDictionary<string, string> Flags(StageMode mode) =>
        Keys.Where(k => k.Flag is not null).Select(k => k.Flag!).Distinct().Select(f => (f, FlagKey(mode,
            f))).Where(x => x.Item2 is not null)
            .ToDictionary(x => x.f, x => x.Item2!, StringComparer.Ordinal);

    static Key Ignore(string name, string why) => new(name, Stages.Both, (b, e) => b.Ignored.Add($"{name} ({why})"));

    /// <summary>Binds entries in order (a later entry wins) for the given mode, then checks the result once.</summary>
    public static ExperimentConfig Bind(StageMode mode, IEnumerable<ConfigEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var b = new Builder(mode);
        var want = Wanted(mode);
        foreach (var e in entries)
        {
            if (e.Key.StartsWith("sweep.",
                StringComparison.Ordinal) && e.Key != "sweep.rho" && !ByName.ContainsKey(e.Key))
            {
                AddSweptOption(b, e);
                b.Origins[e.Key] = e;
                continue;
            }
            if (!ByName.TryGetValue(e.Key, out var key))
                throw new ConfigException($"{e.Where}: unknown key '{e.Key}'{Suggest(e.Key)}");
            if ((key.Stages & want) == 0)
                throw e.Error(key.Stages == Stages.Sweep ? "applies to h2t sweep only"
                    : $"applies to {((key.Stages & Stages.One) != 0 ? "stage 1" : "stage 2")} only (this is a " +
                        $"{(mode == StageMode.StageOne ? "stage-1" : "stage-2")} run)");
            key.Apply(b, e);
            b.Origins[key.Sets ?? key.Name] = e;
        }
        return Finish(b);
    }

    static ExperimentConfig Finish(Builder b)
    {
        if (b.ModeKey is { } mk)
        {
            var m = mk.String().Trim().ToLowerInvariant();
            var expected = b.Mode == StageMode.StageOne ? "stage1" : "stage2";
            if (m is not ("stage1" or "stage2")) throw mk.Error("'stage1' or 'stage2'");
            if (m != expected) throw mk.Error(
                $"'{expected}' for this command (the config describes {m}; run `h2t {m} --config ...`)");
        }
        if (b.HeadRange is { } h && b.MedRange is { } md && b.TailRange is { } t)
        {
            if (h.Item1 != 0 || h.Item2 != md.Item1 || md.Item2 != t.Item1)
                throw b.GroupKey!.Error(
                    $"head/med/tail_class_idx must tile [0, n) without gaps: got [{h.Item1},{h.Item2}) " +
                    $"[{md.Item1},{md.Item2}) [{t.Item1},{t.Item2})");
            b.Data = b.Data with { Groups = ClassGroups.FromRanges(t.Item2, h.Item2, md.Item2) };
            if (b.NumClasses is { } nc && nc.Int() != t.Item2)
                throw b.GroupKey!.Error($"tail_class_idx ends at {t.Item2}, but num_classes is {nc.Int()}");
        }
        else if (b.HeadRange is not null || b.MedRange is not null || b.TailRange is not null)
            throw b.GroupKey!.Error("set all three of head_class_idx, med_class_idx and tail_class_idx, or none");

        if (b.Mixup is { } mix)
        {
            if (b.Mode != StageMode.StageOne &&
                mix) throw b.MixupKey!.Error("false in stage 2 (stage II re-trains the classifier without mixup)");
            if (mix &&
                b.Alpha is null) throw b.MixupKey!.Error("an 'alpha' (mixup's Beta parameter) when mixup is true");
            b.One = b.One with { MixupAlpha = mix ? b.Alpha!.Value : 0 };
        }
        else if (b.Alpha is { } a) b.One = b.One with { MixupAlpha = a };
        if (b.Mode != StageMode.StageOne && b.DualSample == false && b.Two.Rho > 0)
            throw b.DualSampleKey!.Error("true when H2T > 0 (fusion needs the second, head-side sampler)");

        if (b.NumExpertsKey is { } ne && (b.Mode == StageMode.StageOne || b.BackboneKey is not null))
        {
            // The backbone fixes the expert count.
            int experts = Models.ModelFactory.ExpertCount(b.One.Backbone);
            if (ne.Int() != experts)
                throw ne.Error(
                    $"{experts} for backbone '{b.One.Backbone}' (multi-expert: ride_resnet* or reslt_resnet*, 3 " +
                    $"experts)");
        }
        if (b.MethodOptions.Count > 0) b.Two = b.Two with { MethodOptions = b.MethodOptions };
        var one = b.One with { Data = b.Data };
        var result = new ExperimentConfig
        {
            Mode = b.Mode, Name = b.Name, Data = b.Data, DataEntries = b.DataEntries, NumClasses = b.NumClasses,
            StageOne = one, StageTwo = b.Two, ValidationPerClass = b.ValPerClass, Resume = b.Resume,
                BackboneEntry = b.BackboneKey, Ignored = b.Ignored,
        };
        // The one check of the values bound, reported where each was set.
        try
        {
            // its data checks are StageOneConfig's
            if (b.Mode == StageMode.StageOne) return result with { CheckedStageOne = one.Check() };
            // Stage II reads its data from the stage-I checkpoint; the data keys it was given are checked here.
            b.Data.ValidateValues();
            if (b.Mode == StageMode.StageTwo) return result with { CheckedStageTwo = b.Two.Check() };
            // Swept options without a rho list keep the config's one rho; a plain sweep tries the default rho values.
            var rhos = b.SweepRhos ?? (b.SweptOptions.Count > 0 ? [b.Two.Rho] : [.. SweepConfig.DefaultRhos]);
            var sweep = new SweepConfig(b.Two, rhos) { Options = b.SweptOptions };
            return result with { CheckedSweep = (b.ValPerClass is { } v ? sweep with { ValidationPerClass = v } :
                sweep).Check() };
        }
        catch (ConfigException x) when (x.Key is { } k && b.Origins.TryGetValue(k, out var at))
        {
            throw at.Error(x.Message);
        }
    }

    /// <summary>
    /// <c>sweep.KEY: [v1, v2]</c> (a YAML list, or "v1,v2", or start:stop:step for numbers; <c>--sweep KEY=v1,v2</c>):
    /// a stage-II key whose values the sweep's members take in turn. Each value is bound later through the key's own
    /// entry, on the member's config, so it is parsed and checked exactly as the key itself would be.
    /// </summary>
    static void AddSweptOption(Builder b, ConfigEntry e)
    {
        if (b.Mode != StageMode.Sweep) throw e.Error("applies to h2t sweep only");
        var inner = e.Key["sweep.".Length..];
        if (!ByName.TryGetValue(inner, out var key) || (key.Stages & Stages.Two) == 0)
            throw new ConfigException($"{e.Where}: sweep.{inner}: '{inner}' is not a stage-II key{Suggest(inner)}");
        if (inner is "rho" or "H2T" or "mix_fea") throw e.Error("a list of rho values as sweep.rho (--rho)");
        var texts = e.Items is { } xs ? [.. xs.Select(x => x ?? "null")]
            : e.Scalar is { } sc && sc.Contains(':', StringComparison.Ordinal)
                ? [.. ValueGrid.Parse(sc, e.Key).Select(v => v.ToString("R", CultureInfo.InvariantCulture))]
                : e.Scalar?.Split(',',
                    StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList() ?? [];
        var name = key.Sets ?? key.Name;
        var values = texts.Select(t =>
        {
            var entry = new ConfigEntry(inner, t, null, $"{e.Where} (value '{t}')");
            // Bound now once, so a bad value is named where it was written; the member's copy is bound again on its
            // config.
            Apply(b.Mode, key, b.Two, entry);
            return new SweptValue(t, c => Apply(b.Mode, key, c, entry));
        }).ToList();
        b.Origins[$"sweep.{name}"] = e;
        b.SweptOptions.RemoveAll(o => o.Key == name);
        b.SweptOptions.Add(new SweptOption(name, values));
    }

    static StageTwoConfig Apply(StageMode mode, Key key, StageTwoConfig config, ConfigEntry entry)
    {
        var scratch = new Builder(mode) { Two = config };
        if (config.MethodOptions is { } mo) foreach (var (k, v) in mo) scratch.MethodOptions[k] = v;
        key.Apply(scratch, entry);
        return scratch.Two with { MethodOptions = scratch.MethodOptions.Count > 0 ? scratch.MethodOptions : null };
    }

    static string Suggest(string key)
    {
        var close = Keys.Select(k => k.Name).Where(n => Distance(n, key) <= 2 || n.EndsWith("." + key,
            StringComparison.Ordinal)).Take(3).ToList();
        return close.Count > 0 ? $"; did you mean {string.Join(" or ", close.Select(c => $"'{c}'"))}?" :
            "; see docs/configs.md for the keys";
    }

    static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1,
                    j - 1] + (char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1));
        return d[a.Length, b.Length];
    }

    static void SetOptim(Builder b, Func<OptimConfig, OptimConfig> f)
    {
        b.One = b.One with { Optim = f(b.One.Optim) };
        b.Two = b.Two with { Optim = f(b.Two.Optim) };
    }

    static void SetCmo(Builder b, Func<CmoConfig, CmoConfig> f) =>
        b.One = b.One with { Cmo = f(b.One.Cmo ?? new CmoConfig()) };

    static void SetSchedule(Builder b, Func<ScheduleConfig, ScheduleConfig> f)
    {
        b.One = b.One with { Schedule = f(b.One.Schedule) };
        b.Two = b.Two with { Schedule = f(b.Two.Schedule) };
    }

    static void SetLoss(Builder b, Func<LossConfig, LossConfig> f)
    {
        b.One = b.One with { Loss = f(b.One.Loss) };
        b.Two = b.Two with { Loss = f(b.Two.Loss) };
    }

    static double Rho(ConfigEntry e) => e.IsNull ? 0 : e.Double();

    /// <summary>The reference writes imb_factor as n_min / n_max (0.01); the CLI as n_max / n_min (100). Both are
    /// accepted.</summary>
    static double ImbFactor(ConfigEntry e)
    {
        var v = e.Double();
        if (!(v > 0)) throw e.Error($"an imbalance factor > 0 (0.01 or 100 for IF = 100), got {e.Scalar}");
        return v < 1 ? 1 / v : v;
    }

    /// <summary>A name looked up in its concern's one table; a miss names the file and line.</summary>
    static T Named<T>(ConfigEntry e, NameTable<T> table) =>
        table.TryParse(e.String(), out var v) ? v : throw e.Error($"expected {table.Expected}");

    /// <summary>The reference names its feature extractors resnet32_fe, resnet50_fe ...: the same backbones
    /// here.</summary>
    static string Backbone(ConfigEntry e)
    {
        var s = e.String().Trim().ToLowerInvariant();
        if (s.EndsWith("_fe", StringComparison.Ordinal)) s = s[..^3];
        return Models.ModelFactory.BackboneNames.Contains(s, StringComparer.OrdinalIgnoreCase)
            ? s : throw e.Error(
                $"unknown backbone '{s}'; expected one of {string.Join(", ", Models.ModelFactory.BackboneNames)} (a " +
                $"'_fe' suffix is accepted)");
    }

    /// <summary>A classifier name or alias from <see cref="Models.ModelFactory"/>'s table, or stage II's
    /// "keep".</summary>
    static string Classifier(ConfigEntry e)
    {
        var s = e.String().Trim().ToLowerInvariant();
        return s == "keep" ? s : Models.ModelFactory.ResolveHead(s) ??
            throw e.Error($"linear, cosine (FCNorm), lws, ride or reslt; got '{s}'");
    }

    static string SamplerName(ConfigEntry e) => Named(e, Samplers.Aliases);

    /// <summary>A name from <see cref="ComputeNames.Precisions"/>; "auto" is resolved for this CPU
    /// (Models.MixedPrecision.Auto).</summary>
    static ComputePrecision PrecisionOf(ConfigEntry e) => Named(e, ComputeNames.Precisions) ?? MixedPrecision.Auto();

    static string LossName(ConfigEntry e)
    {
        var s = e.String().Trim();
        return LossFactory.Resolve(s) ??
            throw e.Error($"unknown loss '{s}'; expected one of {string.Join(", ", LossFactory.Names)}");
    }
}
