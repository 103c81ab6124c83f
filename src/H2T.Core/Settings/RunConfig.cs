namespace H2T.Settings;

/// <summary>What a stage's config has whichever the stage: its length, optimizer, lr schedule, loss, seed, loading,
/// evaluation cadence and arithmetic. Each stage sets its own defaults in its constructor.</summary>
public abstract record RunConfig
{
    public int Epochs { get; init; }
    public OptimConfig Optim { get; init; } = new();
    public ScheduleConfig Schedule { get; init; } = new();
    public LossConfig Loss { get; init; } = new();
    public int Seed { get; init; }
    /// <summary>Batches assembled ahead on a background thread (0: on the training thread).</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>Evaluate on the test set every N epochs (the last epoch always); 0: only the last.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>The backbone's arithmetic (Models.MixedPrecision); weights and checkpoints stay fp32.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;
    /// <summary>The feature maps' memory layout (Models.MemoryLayout); the values do not depend on it beyond
    /// rounding.</summary>
    public FeatureLayout Layout { get; init; }

    /// <summary>Every <see cref="EvalEvery"/> epochs (0: never early), and always after the last.</summary>
    public bool ShouldEvaluate(int epoch) => epoch == Epochs - 1 || (EvalEvery > 0 && (epoch + 1) % EvalEvery == 0);

    /// <summary>The value checks; names (backbone, classifier, loss, samplers) are checked against their tables by
    /// <c>H2T.Configuration.RunConfigChecks.Validate</c>, which runs these too.</summary>
    public void ValidateValues()
    {
        ValidateRunValues();
        ValidateStageValues();
    }

    /// <summary>What every run checks: epochs, evaluation cadence, prefetch, optimizer, schedule.</summary>
    internal void ValidateRunValues()
    {
        if (Epochs < 1) throw new ConfigException($"epochs must be >= 1, got {Epochs}", "num_epochs");
        if (EvalEvery < 0) throw new ConfigException($"eval_every must be >= 0, got {EvalEvery}", "eval_every");
        if (Prefetch < 0) throw new ConfigException($"prefetch must be >= 0, got {Prefetch}", "prefetch");
        if (Seed < 0) throw new ConfigException($"seed must be >= 0, got {Seed}", "seed");
        Loss.ValidateValues();
        Optim.Validate();
        Schedule.Validate();
    }

    /// <summary>The stage's own value checks.</summary>
    internal abstract void ValidateStageValues();
}
