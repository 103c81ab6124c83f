namespace H2T.Settings;

/// <summary>
/// CMO's stage-I augmentation (Park et al., CVPR 2022, "The Majority Can Help the Minority"): with probability
/// <see cref="Probability"/> a batch gets CutMix, with the pasted patches taken from a second batch drawn by an
/// inverse-frequency ("reverse") sampler. Minority images land on majority backgrounds. One box per batch,
/// lam ~ Beta(beta, beta); the label weight is the exact kept area. Off before <see cref="StartEpoch"/> and in the last
/// <see cref="EndMargin"/> epochs, as in the reference (3 and 3). <see cref="Sampler"/> "reverse" draws class k with
/// probability proportional to 1 / n_k (the paper's q(1, k)); the reference code's per-sample weights 1 / n_k amount
/// to a class-balanced draw, which "balanced" gives.
/// </summary>
public sealed record CmoConfig(double Probability = 0.5, double Beta = 1.0, int StartEpoch = 3, int EndMargin = 3,
    string Sampler = "reverse")
{
    /// <summary>The minority-side samplers CMO supports.</summary>
    public static IReadOnlyList<string> SamplerNames { get; } = ["reverse", "balanced", "sqrt"];

    public bool ActiveAt(int epoch,
        int totalEpochs) => Probability > 0 && epoch >= StartEpoch && epoch < totalEpochs - EndMargin;

    public void Validate()
    {
        if (Probability is < 0 or > 1 ||
            double.IsNaN(Probability)) throw new ConfigException(
            $"cmo probability must lie in [0, 1], got {Probability}", "cmo.prob");
        if (!(Beta > 0)) throw new ConfigException($"cmo beta must be > 0, got {Beta}", "cmo.beta");
        if (StartEpoch < 0) throw new ConfigException("cmo start_data_aug must be >= 0 epochs", "cmo.start_data_aug");
        if (EndMargin < 0) throw new ConfigException("cmo end_data_aug must be >= 0 epochs", "cmo.end_data_aug");
        if (!SamplerNames.Contains(Sampler)) throw new ConfigException(
            $"cmo sampler must be reverse, balanced or sqrt, got '{Sampler}'", "cmo.sampler");
    }
}
