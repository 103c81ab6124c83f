namespace H2T.Settings;

/// <summary>Stage II: frozen backbone, classifier re-training with H2T fusion (rho = 0: plain re-balancing).</summary>
public sealed record StageTwoConfig
{
    public int Epochs { get; init; } = 10;
    public OptimConfig Optim { get; init; } = new(Lr: 0.1, WeightDecay: 5e-4);
    /// <summary>The classifier group's lr is Optim.Lr x LrFactor (reference: 0.1 x 0.2 = 0.02 peak).</summary>
    public double LrFactor { get; init; } = 0.2;
    public ScheduleConfig Schedule { get; init; } = new();
    public LossConfig Loss { get; init; } = new();
    public double Rho { get; init; } = 0.25;
    /// <summary>Tail side sampler: balanced (class-balanced) or reverse (inverse frequency).</summary>
    public string TailSampler { get; init; } = "balanced";
    public string HeadSampler { get; init; } = "instance";
    /// <summary>Run the frozen backbone in train mode so BatchNorm statistics adapt (weights never change).</summary>
    public bool ShiftBn { get; init; } = true;
    /// <summary>Re-initialise the classifier instead of fine-tuning the stage-I one.</summary>
    public bool ReinitClassifier { get; init; }
    /// <summary>"keep" (the stage-I classifier kind) or "lws": Decouple's learnable weight scaling on the stage-I linear
    /// classifier (its weights frozen, one scale per class learnt).</summary>
    public string Classifier { get; init; } = "keep";
    public int Seed { get; init; } = 0;
    /// <summary>Batches assembled ahead on a background thread (0: on the training thread).</summary>
    public int Prefetch { get; init; } = 2;
    /// <summary>Evaluate on the test set every N epochs (the last epoch always); 0: only the last.</summary>
    public int EvalEvery { get; init; } = 1;
    /// <summary>The backbone's arithmetic (Models.MixedPrecision); weights and checkpoints stay fp32.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Fp32;

    public bool ShouldEvaluate(int epoch) => RunChecks.ShouldEvaluate(epoch, Epochs, EvalEvery);

    /// <summary>The value checks; names (loss, samplers) are checked against their tables by
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
        if (Rho is < 0 or > 1 || double.IsNaN(Rho)) throw new ConfigException($"rho must lie in [0, 1], got {Rho}");
        if (!(LrFactor > 0)) throw new ConfigException($"lr_factor must be > 0, got {LrFactor}");
        if (Classifier is not ("keep" or "lws")) throw new ConfigException($"stage-2 classifier must be keep or lws, got '{Classifier}'");
        if (Classifier == "lws" && ReinitClassifier) throw new ConfigException("lws re-scales the stage-I classifier: it cannot be combined with reinit");
    }
}
