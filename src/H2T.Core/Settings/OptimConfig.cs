namespace H2T.Settings;

/// <summary>Optimiser settings: SGD (the reference's) or AdamW (momentum is then beta1).</summary>
public sealed record OptimConfig(double Lr = 0.1, double Momentum = 0.9, double WeightDecay = 2e-4,
    bool Nesterov = false, int BatchSize = 128)
{
    /// <summary>"sgd" (default) or "adamw" (Loshchilov and Hutter, ICLR 2019: decoupled weight decay, kept off norm
    /// and bias parameters).</summary>
    public string Optimizer { get; init; } = "sgd";

    public void Validate(string prefix = "")
    {
        if (!(Lr > 0) || !double.IsFinite(Lr)) throw new ConfigException($"{prefix}lr must be > 0, got {Lr}", "lr");
        if (Momentum is < 0 or >= 1 ||
            double.IsNaN(Momentum)) throw new ConfigException($"{prefix}momentum must lie in [0, 1), got {Momentum}",
            "momentum");
        if (!(WeightDecay >= 0)) throw new ConfigException($"{prefix}weight_decay must be >= 0, got {WeightDecay}",
            "weight_decay");
        if (BatchSize < 1) throw new ConfigException($"{prefix}batch_size must be >= 1, got {BatchSize}", "batch_size");
        if (Optimizer is not ("sgd" or "adamw")) throw new ConfigException(
            $"{prefix}optimizer '{Optimizer}': expected sgd or adamw", "optimizer");
        if (Nesterov && Optimizer == "adamw") throw new ConfigException(
            $"{prefix}nesterov is SGD's; AdamW has none", "nesterov");
        if (Nesterov && Momentum == 0) throw new ConfigException($"{prefix}nesterov needs momentum > 0", "nesterov");
    }
}
