namespace H2T.Losses;

/// <summary>
/// The stage-I/II loss settings. <paramref name="Type"/> is a name or alias from <see cref="LossFactory.Names"/>.
/// </summary>
/// <param name="DrwStartEpoch">-1: no DRW; else the 0-based epoch at which class-balanced re-weighting (beta
/// <paramref name="CbBeta"/>) turns on, for any loss type. "cb-*" types without DRW are weighted from epoch 0.</param>
/// <param name="LogitAdjustTau">tau of "logit-adjust" ("bsce" is tau = 1).</param>
/// <param name="SmoothShape">MisLAS: concave | linear | convex | exp (exp uses <paramref name="SmoothPower"/>).</param>
/// <param name="GclMaxMargin">GCL's constant target-class margin m (the reference uses 0 in stage I, 0.1 in stage II).</param>
/// <param name="GclFocalGamma">null: GCL with CE (stage I); a value: GCL's focal stage-II variant with this gamma.</param>
/// <param name="RideDiversityFactor">RIDE's diversity weight lambda (negative rewards expert disagreement).</param>
/// <param name="RideDiversityTemperature">RIDE's base diversity temperature T0.</param>
/// <param name="RideReweightFactor">RIDE's r in the per-class temperatures after the DRW epoch.</param>
/// <param name="ResLtBeta">ResLT's weight of the individual (per-branch) term against the fusion term.</param>
/// <param name="ResLtMediumStart">ResLT: the class rank (by count) where medium begins; -1: 35% of the classes.</param>
/// <param name="ResLtTailStart">ResLT: the class rank where tail begins; -1: 70% of the classes.</param>
public sealed record LossConfig(string Type = "ce", double FocalGamma = 1.0, double CbBeta = 0.9999, double LdamMaxMargin = 0.5,
    double LdamScale = 30, int DrwStartEpoch = -1, double LogitAdjustTau = 1.0, double SmoothHead = 0.4, double SmoothTail = 0.1,
    string SmoothShape = "concave", double SmoothPower = 3, double GclNoiseMul = 0.5, double GclScale = 30,
    double GclMaxMargin = 0.5, double? GclFocalGamma = null, double RideDiversityFactor = -0.2, double RideDiversityTemperature = 1.0,
    double RideReweightFactor = 0.05, double ResLtBeta = 0.995, int ResLtMediumStart = -1, int ResLtTailStart = -1);
