namespace H2T.Settings;

/// <summary>Stage I: learn backbone + classifier on the long-tailed set.</summary>
public sealed record StageOneConfig
{
    public DataConfig Data { get; init; } = new();
    public string Backbone { get; init; } = "resnet32";
    public string Classifier { get; init; } = "linear";
    public int Epochs { get; init; } = 30;
    public OptimConfig Optim { get; init; } = new();
    public ScheduleConfig Schedule { get; init; } = new();
    public LossConfig Loss { get; init; } = new();
    /// <summary>Mixup alpha; 0 turns mixup off.</summary>
    public double MixupAlpha { get; init; } = 1.0;
    public string Sampler { get; init; } = "instance";
    /// <summary>CMO: CutMix with minority images from an inverse-frequency sampler (null: off).</summary>
    public CmoConfig? Cmo { get; init; }
    public int Seed { get; init; } = 0;
    /// <summary>Batches assembled ahead on a background thread (0: on the training thread).</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>Evaluate on the test set every N epochs (the last epoch always); 0: only the last.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>A torch.save file whose weights initialise the backbone (a torchvision state dict, or any layout
    /// <c>h2t import</c> reads); the classifier starts fresh for the dataset's classes. Null: random init.</summary>
    public string? Pretrained { get; init; }
    /// <summary>Backbone modules that train (e.g. ["layer4.2"]); the others are frozen, their BatchNorm in eval mode.
    /// Null: the whole backbone trains. The classifier always trains.</summary>
    public string[]? Trainable { get; init; }
    /// <summary>The backbone's arithmetic (Models.MixedPrecision); weights and checkpoints stay fp32.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;

    public bool ShouldEvaluate(int epoch) => RunChecks.ShouldEvaluate(epoch, Epochs, EvalEvery);

    /// <summary>The value checks; names (backbone, classifier, loss, sampler) are checked against their tables by
    /// <c>H2T.Configuration.RunConfigChecks.Validate</c>, which runs these too.</summary>
    public void ValidateValues()
    {
        ValidateRunValues();
        ValidateStageValues();
    }

    /// <summary>What every run checks: epochs, evaluation cadence, prefetch, optimizer, schedule.</summary>
    internal void ValidateRunValues() => RunChecks.Validate(Epochs, EvalEvery, Prefetch, Optim, Schedule);

    internal void ValidateStageValues()
    {
        if (Trainable is { Length: 0 }) throw new ConfigException("trainable: name at least one backbone module (or leave it out to train the whole backbone)");
        if (!(MixupAlpha >= 0)) throw new ConfigException($"mixup alpha must be >= 0, got {MixupAlpha}");
        if (Cmo is { } cmo)
        {
            try { cmo.Validate(); }
            catch (ArgumentException e) { throw new ConfigException(e.Message); }
            if (MixupAlpha > 0 && cmo.Probability > 0) throw new ConfigException("cmo and mixup are exclusive: set mixup alpha 0 with CMO (its CutMix replaces mixup)");
        }
    }
}
