namespace H2T.Settings;

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
    /// <summary>"keep" (the stage-I classifier kind) or "lws": Decouple's learnable weight scaling on the stage-I linear
    /// classifier (its weights frozen, one scale per class learnt).</summary>
    public string Classifier { get; init; } = "keep";

    internal override void ValidateStageValues()
    {
        if (Rho is < 0 or > 1 || double.IsNaN(Rho)) throw new ConfigException($"rho must lie in [0, 1], got {Rho}");
        if (!(LrFactor > 0)) throw new ConfigException($"lr_factor must be > 0, got {LrFactor}");
        if (Classifier is not ("keep" or "lws")) throw new ConfigException($"stage-2 classifier must be keep or lws, got '{Classifier}'");
        if (Classifier == "lws" && ReinitClassifier) throw new ConfigException("lws re-scales the stage-I classifier: it cannot be combined with reinit");
    }
}
