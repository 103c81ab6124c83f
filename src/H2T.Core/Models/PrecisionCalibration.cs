using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using H2T.Runtime;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Models;

/// <summary>One measurement of bf16 against fp32 on one kind of CPU, by one build of the library.</summary>
public sealed record CalibrationRecord
{
    /// <summary><see cref="CpuFeatures.Key"/> of the CPU it ran on.</summary>
    public required string Cpu { get; init; }
    /// <summary><see cref="PrecisionCalibration.LibraryVersion"/> of the build that ran it: another build measures
    /// again.</summary>
    public required string Library { get; init; }
    public required int Threads { get; init; }
    public required string Network { get; init; }
    public required double Fp32StepMs { get; init; }
    public required double Bf16StepMs { get; init; }
    public required double Fp32EvalMs { get; init; }
    public required double Bf16EvalMs { get; init; }
    public required DateTimeOffset Measured { get; init; }

    /// <summary>bf16 when its training step is at least 5% faster than fp32's (under that, the two are level and fp32
    /// keeps exact agreement with fp32 runs).</summary>
    [JsonIgnore]
    public ComputePrecision Choice => Bf16StepMs < 0.95 * Fp32StepMs ? ComputePrecision.Bf16 : ComputePrecision.Fp32;

    [JsonIgnore]
    public string Why =>
        FormattableString.Invariant($"calibrated on this CPU {Measured:yyyy-MM-dd} ({Network}, {Threads} threads): ") +
        FormattableString.Invariant($"training step bf16 {Bf16StepMs:F0} ms, fp32 {Fp32StepMs:F0} ms ") +
        FormattableString.Invariant($"({Fp32StepMs / Bf16StepMs:F2}x); evaluation bf16 {Bf16EvalMs:F0} ms, ") +
        FormattableString.Invariant($"fp32 {Fp32EvalMs:F0} ms");
}

/// <summary>
/// <c>h2t info --calibrate</c>: a short measurement of bf16 against fp32 on this CPU (a few training steps and
/// evaluation passes of each on a CIFAR ResNet-32, batch 128, the project's default network), kept in a cache file per
/// CPU kind and library build. <see cref="MixedPrecision.Auto"/> follows a record for the CPU at hand before its rule
/// by CPU kind; a record made by another build of the library (or another libtorch) is ignored, so an upgrade
/// measures again. The file holds one record per CPU kind, so a home folder shared by a cluster's nodes serves them
/// all.
/// </summary>
public static class PrecisionCalibration
{
    const string Network = "resnet32 3x32x32 batch 128";
    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // a file for people to read: '+' as '+'
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The cache file: $H2T_CALIBRATION, else $XDG_CACHE_HOME/h2t (or
    /// ~/.cache/h2t)/precision-calibration.json.</summary>
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable("H2T_CALIBRATION") is { Length: > 0 } p ? p
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "h2t",
                "precision-calibration.json");

    /// <summary>This build of the library and the TorchSharp it runs on (the module id changes whenever the code
    /// does).</summary>
    public static string LibraryVersion { get; } =
        $"{typeof(PrecisionCalibration).Assembly.ManifestModule.ModuleVersionId:N}+torchsharp-" +
        $"{typeof(TorchSharp.torch).Assembly.GetName().Version}";

    /// <summary>The records in <paramref name="path"/> (none if it is missing). A file that does not parse is reported
    /// as such, naming it, rather than silently ignored.</summary>
    public static IReadOnlyList<CalibrationRecord> Read(string? path = null)
    {
        path ??= DefaultPath;
        if (!File.Exists(path)) return [];
        try { return JsonSerializer.Deserialize<List<CalibrationRecord>>(File.ReadAllText(path), Json) ?? []; }
        catch (JsonException e)
        {
            throw new ConfigException(
                $"{path}: not a precision calibration file ({e.Message}); delete it or run h2t info --calibrate again");
        }
    }

    /// <summary>The record for <paramref name="cpu"/> made by this build, or null.</summary>
    public static CalibrationRecord? For(CpuFeatures cpu, string? path = null, string? library = null)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        library ??= LibraryVersion;
        return Read(path).LastOrDefault(r => r.Cpu == cpu.Key && r.Library == library);
    }

    /// <summary>Measures this CPU and writes its record (replacing an older one for the same CPU kind),
    /// atomically.</summary>
    public static CalibrationRecord Run(int threads, string? path = null, int steps = 5)
    {
        path ??= DefaultPath;
        var (fp32Step, fp32Eval) = Measure(ComputePrecision.Fp32, steps);
        var (bf16Step, bf16Eval) = Measure(ComputePrecision.Bf16, steps);
        // Once more in the other order: the first precision measured pays for warming the machine up.
        var (fp32Step2, fp32Eval2) = Measure(ComputePrecision.Fp32, steps);
        var record = new CalibrationRecord
        {
            Cpu = CpuFeatures.Host.Key, Library = LibraryVersion, Threads = threads, Network = Network,
            Fp32StepMs = Math.Min(fp32Step, fp32Step2), Bf16StepMs = bf16Step, Fp32EvalMs = Math.Min(fp32Eval,
                fp32Eval2), Bf16EvalMs = bf16Eval,
            Measured = DateTimeOffset.UtcNow,
        };
        var others = File.Exists(path) ? Read(path).Where(r => r.Cpu != record.Cpu) : [];
        Write(path, [.. others, record]);
        return record;
    }

    /// <summary>Writes <paramref name="records"/> as the cache file, atomically (a rename over the old one).</summary>
    public static void Write(string path, IReadOnlyList<CalibrationRecord> records)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var tmp = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(records, Json));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Median milliseconds of a training step (forward, loss, backward, SGD) and of an evaluation
    /// forward.</summary>
    static (double Step, double Eval) Measure(ComputePrecision precision, int steps)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var backbone = new ResNetCifar(32, 3) { Compute = new(precision) };
        using var head = new LinearHead(backbone.FeatureChannels, 10);
        var parameters = backbone.parameters().Concat(head.parameters()).ToList();
        using var sgd = optim.SGD(parameters, 0.01, 0.9);
        var x = randn(128, 3, 32, 32);
        var y = randint(0, 10, [128]);
        var stepTimes = new List<double>();
        for (int k = 0; k < steps + 2; k++)
        {
            using var step = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            sgd.zero_grad();
            var loss = nn.functional.cross_entropy(head.call(backbone.call(x)), y);
            loss.backward();
            sgd.step();
            if (k >= 2) stepTimes.Add(clock.Elapsed.TotalMilliseconds); // two warm-up steps
        }
        backbone.eval();
        var evalTimes = new List<double>();
        using (no_grad())
        using (var folded = backbone.FoldedForInference())
        {
            var forward = folded ?? backbone;
            var big = randn(256, 3, 32, 32);
            for (int k = 0; k < steps + 1; k++)
            {
                using var step = NewDisposeScope();
                var clock = Stopwatch.StartNew();
                head.call(forward.call(big));
                if (k >= 1) evalTimes.Add(clock.Elapsed.TotalMilliseconds);
            }
        }
        return (Median(stepTimes), Median(evalTimes));
    }

    static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
