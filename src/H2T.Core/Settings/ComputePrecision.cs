namespace H2T.Settings;

/// <summary>The arithmetic a backbone computes in. Weights, optimizer state and checkpoints are fp32 either
/// way.</summary>
public enum ComputePrecision { Fp32, Bf16 }

/// <summary>How feature maps are laid out in memory (Models.MemoryLayout). Channels-last is the default (0), so a
/// config recorded before this setting existed reads as what it ran with.</summary>
public enum FeatureLayout { ChannelsLast, Nchw }

/// <summary>What runs a checkpoint for eval and predict: TorchSharp (libtorch) or ONNX Runtime on the checkpoint's
/// ONNX export, made in memory. Null ("auto"): the faster one for that model
/// (H2T.Inference.ImageClassifier.Engine).</summary>
public enum InferenceEngine { TorchSharp, OnnxRuntime }

/// <summary>The one spelling of precisions and layouts: a flag, a config key and a checkpoint's record all read these
/// tables. "auto" stands for no choice (null): Models.MixedPrecision resolves it for the CPU at hand.</summary>
public static class ComputeNames
{
    public static NameTable<ComputePrecision?> Precisions { get; } = new("precision",
    [
        ("fp32", ComputePrecision.Fp32), ("float32", ComputePrecision.Fp32), ("float", ComputePrecision.Fp32),
        ("bf16", ComputePrecision.Bf16), ("bfloat16", ComputePrecision.Bf16), ("auto", null),
    ], "fp32, bf16 or auto");

    public static NameTable<FeatureLayout> Layouts { get; } = new("memory layout",
        [("channels-last", FeatureLayout.ChannelsLast), ("channels_last", FeatureLayout.ChannelsLast), ("nhwc",
            FeatureLayout.ChannelsLast), ("nchw", FeatureLayout.Nchw)],
        "channels-last or nchw");

    public static NameTable<InferenceEngine?> Engines { get; } = new("engine",
        [("torchsharp", InferenceEngine.TorchSharp), ("libtorch", InferenceEngine.TorchSharp), ("onnxruntime",
            InferenceEngine.OnnxRuntime), ("ort", InferenceEngine.OnnxRuntime), ("auto", null)],
        "auto, torchsharp or onnxruntime");

    public static string Name(ComputePrecision p) => p == ComputePrecision.Bf16 ? "bf16" : "fp32";

    public static string Name(FeatureLayout l) => l == FeatureLayout.Nchw ? "NCHW" : "channels-last";

    /// <summary>A precision a run recorded (a checkpoint's "fp32" / "bf16"); <paramref name="where"/> names the
    /// file.</summary>
    public static ComputePrecision Recorded(string? name, string where) =>
        Precisions.TryParse(name,
            out var p) && p is { } v ? v :
            throw new ConfigException($"{where}: precision '{name}': expected fp32 or bf16");
}
