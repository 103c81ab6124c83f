using System.ComponentModel;
using H2T.Models;
using H2T.Settings;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>Options every command that touches tensors takes.</summary>
public class GlobalSettings : CommandSettings
{
    [CommandOption("--device <DEVICE>")]
    [Description("cpu, cuda or cuda:N (cuda needs a CUDA build of TorchSharp)")]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    [CommandOption("--threads <N>")]
    [Description("intra-op threads for libtorch (default: all cores)")]
    public int? Threads { get; init; }

    public override Spectre.Console.ValidationResult Validate()
    {
        if (Threads is < 1) return Spectre.Console.ValidationResult.Error($"--threads {Threads}: expected a whole number >= 1");
        return base.Validate();
    }
}

/// <summary>Options of every command that runs a backbone: its arithmetic.</summary>
public class ComputeSettings : GlobalSettings
{
    [CommandOption("--precision <P>")]
    [Description(MixedPrecision.Help + "; default: fp32 for training, the checkpoint's for evaluating or predicting")]
    public string? Precision { get; init; }

    /// <summary>The precision asked for, or <paramref name="fallback"/> when none was.</summary>
    public ComputePrecision PrecisionOr(ComputePrecision fallback) => Precision is null ? fallback : MixedPrecision.Parse(Precision);

    /// <summary>The precision asked for; null: the checkpoint's.</summary>
    public ComputePrecision? PrecisionAsked => Precision is null ? null : MixedPrecision.Parse(Precision);
}

/// <summary>Options of a command that runs a trained model: which engine computes it.</summary>
public class InferenceSettings : ComputeSettings
{
    [CommandOption("--engine <E>")]
    [Description("auto (default: ONNX Runtime for ImageNet ResNets in fp32, where it is faster; TorchSharp otherwise), torchsharp or onnxruntime (the checkpoint's fp32 export, made in memory)")]
    public string? Engine { get; init; }

    /// <summary>The engine asked for; null: auto.</summary>
    public InferenceEngine? EngineAsked => ComputeNames.Engines.Parse(Engine ?? "auto");
}

/// <summary>Options of a command that reads a checkpoint and the data it was trained on, which may have moved.</summary>
public class CheckpointDataSettings : ComputeSettings
{
    [CommandOption("--data <PATH>")] [Description("dataset files, if not where the checkpoint's training found them")]
    public string? DataPath { get; init; }
}
