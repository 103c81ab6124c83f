namespace H2T.Settings;

/// <summary>Stage II's feature source: a backbone pass per batch, cached final maps, or cached pooled
/// vectors.</summary>
public enum FeatureCacheMode { Off, Maps, Pooled }

/// <summary>Stage II: frozen backbone, classifier re-training with H2T fusion (rho = 0: plain re-balancing).</summary>
public sealed record StageTwoConfig : RunConfig
{
    public StageTwoConfig()
    {
        Epochs = 10;
        Optim = new(Lr: 0.1, WeightDecay: 5e-4);
    }

    /// <summary>The classifier group's lr is Optim.Lr x LrFactor (reference: 0.1 x 0.2 = 0.02 peak).</summary>
    public double LrFactor { get; init; } = 0.2;
    public double Rho { get; init; } = 0.25;
    /// <summary>Tail side sampler: balanced (class-balanced) or reverse (inverse frequency).</summary>
    public string TailSampler { get; init; } = "balanced";
    public string HeadSampler { get; init; } = "instance";
    /// <summary>Run the frozen backbone in train mode so BatchNorm statistics adapt (weights never change).</summary>
    public bool ShiftBn { get; init; } = true;
    /// <summary>Re-initialise the classifier instead of fine-tuning the stage-I one.</summary>
    public bool ReinitClassifier { get; init; }
    /// <summary>"keep" (the stage-I classifier kind) or "lws": Decouple's learnable weight scaling on the stage-I
    /// linear
    /// classifier (its weights frozen, one scale per class learnt).</summary>
    public string Classifier { get; init; } = "keep";
    /// <summary>The feature augmentation (H2T.Fusion.StageTwoMethods): "h2t" (with <see cref="Rho"/>), "feature-mixup",
    /// "none".</summary>
    public string Fusion { get; init; } = "h2t";
    /// <summary>The chosen methods' own options by config key (e.g. feature_mixup.alpha); their defaults live in the
    /// methods. Null: none given.</summary>
    public IReadOnlyDictionary<string, string>? MethodOptions { get; init; }
    /// <summary>Where the classifiers' features come from (H2T.Training.FeatureSources): a backbone pass per batch
    /// (off), the final maps cached once (maps), or their pooled vectors cached once (pooled). The cached sources
    /// re-estimate BatchNorm statistics once and cache <see cref="FeatureCacheViews"/> augmented views.</summary>
    public FeatureCacheMode FeatureCache { get; init; }
    /// <summary>Batches of each side's sampler that the cached sources re-estimate BatchNorm on with shift-BN
    /// (0: one whole epoch).</summary>
    public int FeatureCacheBnBatches { get; init; }
    /// <summary>Augmented views cached per training image; each epoch draws one per sampled position.</summary>
    public int FeatureCacheViews { get; init; }

    /// <summary>What <see cref="FeatureCacheViews"/> 0 means: 4 augmented views per image for the map cache, and for
    /// the pooled source 1 recorded epoch of the exact path's batches (docs/performance.md says why).</summary>
    public int ViewsOrDefault => FeatureCacheViews > 0 ? FeatureCacheViews : FeatureCache == FeatureCacheMode.Pooled ?
        1 : 4;
    /// <summary>"auto" (the backbone's arithmetic: bf16 maps as bf16, fp32 as fp32), "bf16" or "fp32".</summary>
    public string FeatureCacheStorage { get; init; } = "auto";

    internal static readonly string[] CacheStorages = ["auto", "bf16", "fp32"];

    /// <summary>The names of <see cref="FeatureCache"/>: on / true keep meaning the map cache they meant
    /// first.</summary>
    public static NameTable<FeatureCacheMode> FeatureCacheModes { get; } = new("feature cache",
    [
        ("off", FeatureCacheMode.Off), ("false", FeatureCacheMode.Off), ("no", FeatureCacheMode.Off),
        ("pooled", FeatureCacheMode.Pooled), ("maps", FeatureCacheMode.Maps), ("on", FeatureCacheMode.Maps), ("true",
            FeatureCacheMode.Maps),
        ("yes", FeatureCacheMode.Maps),
    ], "off, pooled or maps (on: maps)");

    /// <summary>What members trained together must share, by config key: what the feature source and the epoch loop
    /// read. Everything else (rho, fusion and its options, classifier, loss, lr, weight decay) is each member's
    /// own.</summary>
    public IReadOnlyDictionary<string, object> SharedSettings() => new Dictionary<string,
        object>(StringComparer.Ordinal)
    {
        ["num_epochs"] = Epochs, ["seed"] = Seed, ["batch_size"] = Optim.BatchSize, ["eval_every"] = EvalEvery,
        ["prefetch"] = Prefetch, ["precision"] = Precision, ["memory_layout"] = Layout,
        ["sampler.weighted_sampler.type"] = TailSampler, ["sampler.dual_sample.type"] = HeadSampler,
            ["shift_bn"] = ShiftBn,
        ["feature_cache"] = FeatureCache, ["feature_cache_views"] = FeatureCacheViews,
            ["feature_cache_storage"] = FeatureCacheStorage,
        ["feature_cache_bn_batches"] = FeatureCacheBnBatches,
    };

    /// <summary>The shared settings (<see cref="SharedSettings"/>) in which <paramref name="other"/> differs from
    /// this.</summary>
    public IReadOnlyList<string> SharedDifferences(StageTwoConfig other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var theirs = other.SharedSettings();
        return [.. SharedSettings().Where(kv => !Equals(kv.Value, theirs[kv.Key])).Select(kv => kv.Key)];
    }

    /// <summary>The one check of a rho value, for a single run (<paramref name="key"/> H2T) and each sweep value
    /// alike.</summary>
    public static void CheckRho(double rho, string key)
    {
        if (rho is < 0 or > 1 || double.IsNaN(rho)) throw new ConfigException($"rho must lie in [0, 1], got {rho}",
            key);
    }

    internal override void ValidateStageValues()
    {
        CheckRho(Rho, "H2T");
        if (!(LrFactor > 0)) throw new ConfigException($"lr_factor must be > 0, got {LrFactor}",
            "lr_scheduler.lr_factor");
        if (FeatureCacheBnBatches < 0) throw new ConfigException(
            $"feature_cache_bn_batches must be >= 0 (0: one epoch), got {FeatureCacheBnBatches}",
            "feature_cache_bn_batches");
        if (FeatureCacheViews is < 0 or > 256)
            throw new ConfigException(
                $"feature_cache_views must lie in [0, 256] (0: the source's default), got {FeatureCacheViews}",
                "feature_cache_views");
        if (!CacheStorages.Contains(FeatureCacheStorage))
            throw new ConfigException(
                $"feature_cache_storage: expected {string.Join(", ", CacheStorages)}, got '{FeatureCacheStorage}'",
                "feature_cache_storage");
        if (Classifier == "lws" &&
            ReinitClassifier) throw new ConfigException(
            "lws re-scales the stage-I classifier: it cannot be combined with reinit", "reinit_classifier");
    }
}
