namespace H2T.Settings;

/// <summary>The arithmetic a backbone computes in. Weights, optimizer state and checkpoints are fp32 either way.</summary>
public enum ComputePrecision { Fp32, Bf16 }
