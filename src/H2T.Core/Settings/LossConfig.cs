namespace H2T.Settings;

/// <summary>
/// The stage-I/II loss settings. <paramref name="Type"/> is a name or alias from H2T.Losses.LossFactory.Names.
/// </summary>
/// <remarks>Settings a loss type does not read are ignored; each has the reference's default.</remarks>
public sealed record LossConfig(string Type = "ce")
{
    public double FocalGamma { get; init; } = 1.0;
    public double CbBeta { get; init; } = 0.9999;
    public double LdamMaxMargin { get; init; } = 0.5;
    public double LdamScale { get; init; } = 30;
    /// <summary>-1: no DRW; else the 0-based epoch at which class-balanced re-weighting (beta <see cref="CbBeta"/>)
    /// turns on, for any loss type. "cb-*" types without DRW are weighted from epoch 0.</summary>
    public int DrwStartEpoch { get; init; } = -1;
    /// <summary>tau of "logit-adjust" ("bsce" is tau = 1).</summary>
    public double LogitAdjustTau { get; init; } = 1.0;
    public double SmoothHead { get; init; } = 0.4;
    public double SmoothTail { get; init; } = 0.1;
    /// <summary>MisLAS: concave | linear | convex | exp (exp uses <see cref="SmoothPower"/>).</summary>
    public string SmoothShape { get; init; } = "concave";
    public double SmoothPower { get; init; } = 3;
    public double GclNoiseMul { get; init; } = 0.5;
    public double GclScale { get; init; } = 30;
    /// <summary>GCL's constant target-class margin m (the reference uses 0 in stage I, 0.1 in stage II).</summary>
    public double GclMaxMargin { get; init; } = 0.5;
    /// <summary>null: GCL with CE (stage I); a value: GCL's focal stage-II variant with this gamma.</summary>
    public double? GclFocalGamma { get; init; }
    /// <summary>RIDE's diversity weight lambda (negative rewards expert disagreement).</summary>
    public double RideDiversityFactor { get; init; } = -0.2;
    /// <summary>RIDE's base diversity temperature T0.</summary>
    public double RideDiversityTemperature { get; init; } = 1.0;
    /// <summary>RIDE's r in the per-class temperatures after the DRW epoch.</summary>
    public double RideReweightFactor { get; init; } = 0.05;
    /// <summary>ResLT's weight of the individual (per-branch) term against the fusion term.</summary>
    public double ResLtBeta { get; init; } = 0.995;
    /// <summary>ResLT: the class rank (by count) where medium begins; -1: 35% of the classes.</summary>
    public int ResLtMediumStart { get; init; } = -1;
    /// <summary>ResLT: the class rank where tail begins; -1: 70% of the classes.</summary>
    public int ResLtTailStart { get; init; } = -1;
    /// <summary>Options of losses that declare their own (H2T.Losses.LossFactory's rows: <c>loss.VS.gamma</c>, ...),
    /// by config key; their defaults live in the loss. Null: none given.</summary>
    public IReadOnlyDictionary<string, string>? Options { get; init; }

    /// <summary>The value checks of every loss setting (a loss reads only its own; all are checked so none is wrong in
    /// a config.json).</summary>
    public void ValidateValues()
    {
        static void AtLeast(double v, double min, bool strict, string key)
        {
            if (double.IsNaN(v) || (strict ? v <= min :
                v < min)) throw new ConfigException($"{key} must be {(strict ? ">" : ">=")} {min}, got {v}", key);
        }
        static void Fraction(double v, string key)
        {
            if (v is < 0 or > 1 || double.IsNaN(v)) throw new ConfigException($"{key} must lie in [0, 1], got {v}",
                key);
        }
        AtLeast(FocalGamma, 0, false, "loss.focal.gamma");
        Fraction(CbBeta, "loss.CB.beta");
        AtLeast(LdamMaxMargin, 0, false, "loss.LDAM.max_m");
        AtLeast(LdamScale, 0, true, "loss.LDAM.s");
        AtLeast(LogitAdjustTau, 0, false, "loss.LA.tau");
        Fraction(SmoothHead, "smooth_head");
        Fraction(SmoothTail, "smooth_tail");
        if (SmoothShape is not ("concave" or "linear" or "convex" or
            "exp")) throw new ConfigException($"shape must be concave, linear, convex or exp, got '{SmoothShape}'",
            "shape");
        AtLeast(SmoothPower, 0, true, "power");
        AtLeast(GclNoiseMul, 0, false, "loss.GCL.noise_mul");
        AtLeast(GclScale, 0, true, "loss.GCL.s");
        AtLeast(GclMaxMargin, 0, false, "loss.GCL.max_m");
        if (GclFocalGamma is { } g) AtLeast(g, 0, false, "loss.GCL.gamma");
        if (!double.IsFinite(RideDiversityFactor)) throw new ConfigException(
            $"loss.RIDE.additional_diversity_factor must be a number, got {RideDiversityFactor}",
            "loss.RIDE.additional_diversity_factor");
        AtLeast(RideDiversityTemperature, 0, true, "loss.RIDE.base_diversity_temperature");
        AtLeast(RideReweightFactor, 0, false, "loss.RIDE.reweight_factor");
        Fraction(ResLtBeta, "loss.ResLT.beta");
        if (ResLtMediumStart < -1) throw new ConfigException(
            $"loss.ResLT.medium_start must be >= 0, got {ResLtMediumStart}", "loss.ResLT.medium_start");
        if (ResLtTailStart < -1) throw new ConfigException($"loss.ResLT.tail_start must be >= 0, got {ResLtTailStart}",
            "loss.ResLT.tail_start");
    }
}
