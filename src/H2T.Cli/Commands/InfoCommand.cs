using H2T.Settings;
using System.Runtime.InteropServices;
using H2T.Models;
using H2T.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;
using TorchSharp;

namespace H2T.Cli.Commands;

public sealed class InfoSettings : GlobalSettings
{
    [System.ComponentModel.Description(
        "measure bf16 against fp32 on this CPU (a few ResNet-32 steps, about 10 s) and keep the result for " +
        "--precision auto ($H2T_CALIBRATION, default ~/.cache/h2t/precision-calibration.json)")]
    [CommandOption("--calibrate")]
    public bool Calibrate { get; init; }
}

public sealed class InfoCommand(IAnsiConsole console) : Command<InfoSettings>
{
    public override int Execute(CommandContext context, InfoSettings settings, CancellationToken cancellationToken)
    {
        var fix = TorchRuntime.NativeFix;
        TorchRuntime.Initialize(settings.Threads);
        torch.Device device;
        try { device = TorchRuntime.ResolveDevice(settings.Device); }
        catch (DeviceUnavailableException e) { throw new UsageException(e.Message); }

        if (settings.Calibrate)
        {
            var record = PrecisionCalibration.Run(torch.get_num_threads());
            console.MarkupLineParts(
                $"calibrated: {record.Why}; --precision auto now gives {MixedPrecision.Name(record.Choice)} here ",
                $"(written to {PrecisionCalibration.DefaultPath})");
        }
        var table = new Table().AddColumns("item", "value").HideHeaders().Border(TableBorder.Simple);
        table.AddRow("h2t", CliApp.Version);
        table.AddRow("TorchSharp", typeof(torch).Assembly.GetName().Version?.ToString() ?? "?");
        table.AddRow("libtorch", torch.__version__);
        table.AddRow("libtorch build",
            TorchRuntime.Backend == "cuda" ? "cuda (TorchSharp-cuda; TorchBackend=cuda)" :
            "cpu (TorchSharp-cpu; H2T_TORCH_BACKEND=cuda ./h2t builds the CUDA one, untested)");
        table.AddRow("device", device.ToString());
        table.AddRow("CUDA available", torch.cuda.is_available() ? "yes" : "no");
        table.AddRow("threads", torch.get_num_threads().ToString());
        table.AddRow("cores", Environment.ProcessorCount.ToString());
        var cpu = CpuFeatures.Host;
        table.AddRow("CPU", Markup.Escape(cpu.ToString()));
        table.AddRow("bf16 units",
            $"avx512_bf16 {(cpu.Avx512Bf16 ? "yes" : "no")}, amx_bf16 {(cpu.AmxBf16 ? "yes" : "no")}; --precision " +
            $"auto gives {MixedPrecision.Name(MixedPrecision.Auto(cpu))} ({MixedPrecision.AutoReason(cpu)})");
        table.AddRow("native fix", Markup.Escape(fix.State));
        table.AddRow("native fix detail", Markup.Escape(fix.Detail));
        table.AddRow("malloc tuning", Markup.Escape(TorchRuntime.MallocTuning));
        table.AddRow("1x1 convolutions", Markup.Escape(Pointwise.Choice.Describe()));
        table.AddRow("feature maps",
            $"{ComputeNames.Name(new StageOneConfig().Layout)} by default (--memory-layout nchw or memory_layout: " +
            $"nchw for NCHW)");
        // The stage-II methods come from their one table, so a new method shows up here without a change.
        foreach (var line in H2T.Fusion.StageTwoMethods.Describe()) table.AddRow("stage-II method",
            Markup.Escape(line));
        foreach (var line in H2T.Losses.LossFactory.DescribeOptions()) table.AddRow("loss options",
            Markup.Escape(line));
        table.AddRow("native library", Markup.Escape(fix.LibraryPath ?? "-"));
        table.AddRow(".NET", RuntimeInformation.FrameworkDescription);
        table.AddRow("OS", Markup.Escape(RuntimeInformation.OSDescription));
        console.Write(table);
        return 0;
    }
}
