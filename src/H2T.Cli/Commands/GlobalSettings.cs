using System.ComponentModel;
using H2T.Data;
using H2T.Models;
using H2T.Settings;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>Options every command that touches tensors takes.</summary>
public class GlobalSettings : CommandSettings
{
    [CommandOption("--device <DEVICE>")] [RunOption]
    [Description("cpu, cuda or cuda:N (cuda needs a CUDA build of TorchSharp)")]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    [CommandOption("--threads <N>")] [RunOption]
    [Description("intra-op threads for libtorch (default: all cores)")]
    public int? Threads { get; init; }

    public override Spectre.Console.ValidationResult Validate()
    {
        if (Threads is < 1) return Spectre.Console.ValidationResult.Error(
            $"--threads {Threads}: expected a whole number >= 1");
        return base.Validate();
    }
}

/// <summary>Options of every command that runs a backbone: its arithmetic.</summary>
public class ComputeSettings : GlobalSettings
{
    [CommandOption("--precision <P>")]
    [Description(MixedPrecision.Help
        + "; training: default fp32 [[precision]]; evaluating or predicting: the checkpoint's")]
    public string? Precision { get; init; }

    /// <summary>The precision asked for, parsed once when the options are bound (<see cref="Validate"/>); null: none
    /// was (the checkpoint's, or fp32 for training). A command that binds a config leaves it null: there --precision
    /// is the config key <c>precision</c>, parsed by the binder with the file's and overrides' values.</summary>
    public ComputePrecision? PrecisionAsked { get; private set; }

    /// <summary>Whether --precision is a config key of this command (bound by
    /// <see cref="ConfigSupport.Bind"/>).</summary>
    protected virtual bool BindsConfig => false;

    public override Spectre.Console.ValidationResult Validate()
    {
        if (Precision is not null && !BindsConfig)
        {
            if (!ComputeNames.Precisions.TryParse(Precision, out var p))
                return Spectre.Console.ValidationResult.Error(
                    $"--precision {Precision}: expected {ComputeNames.Precisions.Expected}");
            PrecisionAsked = p ?? MixedPrecision.Auto();
        }
        return base.Validate();
    }
}

/// <summary>Options of a command that runs a trained model: which engine computes it.</summary>
public class InferenceSettings : ComputeSettings
{
    [CommandOption("--engine <E>")]
    [Description(
        "auto (default: ONNX Runtime for ImageNet ResNets in fp32, where it is faster; TorchSharp otherwise), " +
        "torchsharp or onnxruntime (the checkpoint's fp32 export, made in memory)")]
    public string? Engine { get; init; }

    /// <summary>The engine asked for, parsed once in <see cref="Validate"/>; null: auto.</summary>
    public InferenceEngine? EngineAsked { get; private set; }

    // bool?: --tta=false is said, not dropped, so it can contradict --tta-mode.
    [CommandOption("--tta")]
    [Description(
        "LIFT's test-time ensemble: resize by +24 px, five crops (corners + centre), mean of their logits")]
    public bool? Tta { get; init; }
    [CommandOption("--tta-mode <MODE>")]
    [Description("fivecrop (5 views, LIFT's default) or tencrop (the five crops and their horizontal flips); " +
        "implies --tta")]
    public string? TtaMode { get; init; }
    [CommandOption("--tta-expand <PX>")]
    [Description("pixels added to the shorter side before cropping (default 24, as LIFT; also for 28/32 px inputs)")]
    public int? TtaExpand { get; init; }

    /// <summary>The test-time ensemble asked for, parsed once in <see cref="Validate"/>; null: none.</summary>
    public TestTimeEnsemble? TestTimeAsked { get; private set; }

    public override Spectre.Console.ValidationResult Validate()
    {
        if (!ComputeNames.Engines.TryParse(Engine ?? "auto", out var engine))
            return Spectre.Console.ValidationResult.Error(
                $"--engine {Engine}: expected {ComputeNames.Engines.Expected}");
        EngineAsked = engine;
        TestTimeViews mode = TestTimeViews.FiveCrop;
        if (TtaMode is not null && !TestTimeEnsemble.Modes.TryParse(TtaMode, out mode))
            return Spectre.Console.ValidationResult.Error(
                $"--tta-mode {TtaMode}: expected {TestTimeEnsemble.Modes.Expected}");
        if (TtaExpand is < 1)
            return Spectre.Console.ValidationResult.Error($"--tta-expand {TtaExpand}: expected >= 1 pixel");
        if (Tta is false && (TtaMode is not null || TtaExpand is not null))
            return Spectre.Console.ValidationResult.Error(
                "--tta=false with --tta-mode / --tta-expand: say one or the other");
        TestTimeAsked = Tta is true || TtaMode is not null || TtaExpand is not null
            ? new TestTimeEnsemble(mode, TtaExpand ?? TestTimeEnsemble.DefaultExpand) : null;
        return base.Validate();
    }
}

/// <summary>Options of a command that reads a checkpoint and the data it was trained on, which may have
/// moved.</summary>
public class CheckpointDataSettings : ComputeSettings
{
    [CommandOption("--data <PATH>")] [Description("dataset files, if not where the checkpoint's training found them")]
    public string? DataPath { get; init; }
}
