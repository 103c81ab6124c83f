using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Interop;

namespace H2T.Tests.Models;

/// <summary>--precision auto against recorded inputs: real /proc/cpuinfo text and calibration records.</summary>
[Collection(ProcessEnvironment.Name)]
public sealed class PrecisionCalibrationTests : IDisposable
{
    readonly TempDir dir = new();
    readonly string? saved = Environment.GetEnvironmentVariable("H2T_CALIBRATION");

    public PrecisionCalibrationTests() => Environment.SetEnvironmentVariable("H2T_CALIBRATION", Path.Combine(dir.Path,
        "none.json"));

    static readonly CpuFeatures Cooper = CpuFeatures.Parse(
        "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) " +
            "Processor\nflags\t\t: fpu avx512f avx512_bf16\n");

    static CalibrationRecord Record(CpuFeatures cpu, double fp32, double bf16, string? library = null) => new()
    {
        Cpu = cpu.Key, Library = library ?? PrecisionCalibration.LibraryVersion, Threads = 2,
            Network = "resnet32 3x32x32 batch 128",
        Fp32StepMs = fp32, Bf16StepMs = bf16, Fp32EvalMs = fp32 / 3, Bf16EvalMs = bf16 / 3,
            Measured = new DateTimeOffset(2026, 12, 3, 0, 0, 0, TimeSpan.Zero),
    };

    /// <summary>This machine's own /proc/cpuinfo (first processor, committed as the kernel wrote it): AMD family 26
    /// model 2 is Zen 5, where bf16 was measured faster, so auto gives bf16 without any calibration.</summary>
    [Fact]
    public void TheRealCpuinfoOfAZen5MachineGivesBf16()
    {
        var text = File.ReadAllText(Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Runtime", "Fixtures",
            "cpuinfo-amd-epyc-family26.txt"));
        var cpu = CpuFeatures.Parse(text);
        Assert.Equal(("AuthenticAMD", "AMD EPYC", 26, 2, "Zen 5"), (cpu.Vendor, cpu.Model, cpu.Family, cpu.ModelNumber,
            cpu.AmdGeneration));
        Assert.True(cpu.Avx512Bf16);
        Assert.False(cpu.AmxBf16);
        Assert.Equal(ComputePrecision.Bf16, MixedPrecision.Auto(cpu));
        Assert.Contains("family 26 model 2, Zen 5", cpu.ToString());
        // The same text with family 25 is a Zen 4, which nobody measured: fp32, and the reason says how to measure it.
        var zen4 = CpuFeatures.Parse(text.Replace("cpu family\t: 26", "cpu family\t: 25", StringComparison.Ordinal));
        Assert.Equal("Zen 4", zen4.AmdGeneration);
        Assert.Equal(ComputePrecision.Fp32, MixedPrecision.Auto(zen4));
        Assert.Contains("h2t info --calibrate", MixedPrecision.AutoReason(zen4));
    }

    [Fact]
    public void AutoFollowsACalibrationOfThisCpuByThisBuildOnly()
    {
        var file = Path.Combine(dir.Path, "cal.json");
        Environment.SetEnvironmentVariable("H2T_CALIBRATION", file);
        var zen4 = Cooper with { Vendor = "AuthenticAMD", Model = "AMD EPYC 9654", Family = 25, ModelNumber = 17 };
        // Measured here: bf16 1.4x faster on the Intel CPU the rule keeps in fp32, and level (3%) on the Zen 4.
        PrecisionCalibration.Write(file, [Record(Cooper, 500, 350), Record(zen4, 300, 292)]);
        Assert.Equal(ComputePrecision.Fp32, MixedPrecision.Auto(zen4));
        Assert.Equal(ComputePrecision.Bf16, MixedPrecision.Auto(Cooper));
        Assert.Contains("calibrated on this CPU 2026-12-03", MixedPrecision.AutoReason(Cooper));
        Assert.Contains("bf16 350 ms, fp32 500 ms (1.43x)", MixedPrecision.AutoReason(Cooper));
        Assert.Null(MixedPrecision.Warning(ComputePrecision.Bf16, Cooper));
        // A record made by another build of the library is ignored: the rule again.
        PrecisionCalibration.Write(file, [Record(Cooper, 500, 350, library: "another-build")]);
        Assert.Equal(ComputePrecision.Fp32, MixedPrecision.Auto(Cooper));
        Assert.Contains("measured slower than fp32", MixedPrecision.AutoReason(Cooper));
        // So is one for another CPU kind (the same model name, other flags).
        PrecisionCalibration.Write(file, [Record(Cooper with { AmxBf16 = true }, 500, 250)]);
        Assert.Equal(ComputePrecision.Fp32, MixedPrecision.Auto(Cooper));
        // A damaged file is named.
        File.WriteAllText(file, "{ not json");
        Assert.Contains("cal.json: not a precision calibration file",
            Assert.Throws<ConfigException>(() => MixedPrecision.Auto(Cooper)).Message);
    }

    /// <summary>h2t info --calibrate measures this machine, writes its record, and auto follows it.</summary>
    [Fact]
    public void InfoCalibrateMeasuresThisCpuAndAutoFollowsIt()
    {
        var file = Path.Combine(dir.Path, "host.json");
        Environment.SetEnvironmentVariable("H2T_CALIBRATION", file);
        var (rc, output) = CliRunner.Run("info", "--calibrate", "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("calibrated: calibrated on this CPU", output);
        var record = Assert.Single(PrecisionCalibration.Read(file));
        Assert.Equal(CpuFeatures.Host.Key, record.Cpu);
        Assert.True(record.Fp32StepMs > 0 && record.Bf16StepMs > 0 && record.Fp32EvalMs > 0 && record.Bf16EvalMs > 0);
        Assert.Equal(record.Choice, MixedPrecision.Auto());
        (rc, output) = CliRunner.Run("info");
        Assert.True(rc == 0, output);
        Assert.Contains("calibrated on this CPU", output.ReplaceLineEndings(" "));
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("H2T_CALIBRATION", saved);
        dir.Dispose();
    }
}
