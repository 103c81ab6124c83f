using System.ComponentModel;
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
