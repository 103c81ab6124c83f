using System.Diagnostics;
using System.Text.Json;
using H2T.Runtime;
using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Models;

/// <summary>How this process computes pointwise convolutions, and why.</summary>
public sealed record PointwiseChoice(bool Gemm, string Why)
{
    public string Describe() => (Gemm ? "GEMM (a matrix product over the channels)" : "oneDNN convolution") +
        $": {Why}";
}

/// <summary>One machine's probe result, kept in the cache file.</summary>
public sealed record PointwiseProbeRecord
{
    public string Cpu { get; init; } = "";
    public string Machine { get; init; } = "";
    public string Library { get; init; } = "";
    public bool Gemm { get; init; }
    public string Why { get; init; } = "";
    public DateTimeOffset Probed { get; init; }
}

/// <summary>
/// Pointwise (1x1, unpadded, ungrouped) convolutions, by oneDNN's convolution or as one matrix product over the
/// channels (the same sums, the stride taken as a subsampling first).
/// <para>Why two ways: on some machines libtorch 2.10's oneDNN chooses the blocking of its brgemm 1x1 kernels (forward
/// and backward-data) with an integer division by zero, and the process dies with SIGFPE. It was seen on an AMD
/// family-26 VM for every ResNet-50-family bottleneck (fp32 and bf16, any thread count, any DNNL_MAX_CPU_ISA) while
/// the same CPU model on another host ran them. So the machine is probed once, in a child process (a crash there
/// costs nothing), and the answer kept per machine and build. Where the convolution is safe it stays: on a healthy
/// machine it is the faster of the two (measured on ResNet 1x1 shapes: docs/native.md, "oneDNN's 1x1
/// convolution").</para>
/// </summary>
public static class Pointwise
{
    /// <summary>Forces the choice: gemm or conv. Unset: the probe decides.</summary>
    public const string EnvironmentVariable = "H2T_POINTWISE";

    /// <summary>What a passing probe prints: the parent looks for it, so a child that exits 0 without running the probe
    /// (an old build, another program) is not taken as a pass.</summary>
    public const string ProbePassed = "pointwise probe: oneDNN 1x1 convolutions ran";

    /// <summary>What the child prints before the probe: a child that dies without it never ran the probe (startup
    /// hooks off, another host), which says nothing about oneDNN.</summary>
    internal const string ProbeStarted = "pointwise probe: starting";

    static readonly Lazy<PointwiseChoice> Decision = new(
        () => Decide(Environment.GetEnvironmentVariable(EnvironmentVariable), CachePath, ProbeCommand()),
        LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Set in the probe's child: the library's startup hook runs the probe and exits before the
    /// application's Main.</summary>
    internal const string ProbeChildVariable = "H2T_POINTWISE_PROBE";

    /// <summary>This process's choice, decided on first use (by the environment, the cache file or a probe).</summary>
    public static PointwiseChoice Choice => Decision.Value;

    /// <summary>The cache file: beside the precision calibration's (~/.cache/h2t/pointwise-probe.json by
    /// default).</summary>
    public static string CachePath =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(PrecisionCalibration.DefaultPath))!,
        "pointwise-probe.json");

    /// <summary>Whether <paramref name="conv"/> is pointwise.</summary>
    public static bool IsPointwise(Conv2d conv)
    {
        ArgumentNullException.ThrowIfNull(conv);
        var w = conv.weight!;
        return w.shape[2] == 1 && w.shape[3] == 1 && conv.groups == 1 && conv.stride[0] == conv.stride[1]
            && conv.padding is { } pad && pad.All(p => p == 0) && conv.dilation.All(d => d == 1);
    }

    /// <summary>Whether this process computes <paramref name="conv"/> as a matrix product.</summary>
    public static bool Applies(Conv2d conv) => IsPointwise(conv) && Choice.Gemm;

    /// <summary>Whether a folded convolution with this weight, padding and groups is computed as a matrix
    /// product.</summary>
    public static bool Applies(Tensor weight, long padding, long groups)
    {
        ArgumentNullException.ThrowIfNull(weight);
        return weight.shape[2] == 1 && weight.shape[3] == 1 && padding == 0 && groups == 1 && Choice.Gemm;
    }

    /// <summary>x [N, C, H, W] convolved with weight [O, C, 1, 1] at <paramref name="stride"/>, plus bias [O], as a
    /// matrix product; the output keeps the input's memory layout (on channels-last maps the permutes are
    /// views).</summary>
    public static Tensor Conv(Tensor x, Tensor weight, Tensor? bias, long stride)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        using var scope = NewDisposeScope();
        var src = stride == 1 ? x : x[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(step: stride),
            TensorIndex.Slice(step: stride)];
        var y = src.permute(0, 2, 3, 1).matmul(weight.flatten(1).t());
        if (bias is not null) y = y.add(bias);
        y = y.permute(0, 3, 1, 2);
        if (!MemoryLayout.IsChannelsLast(x)) y = y.contiguous();
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The probe itself, run in the child (<see cref="ProbeCommand"/>): oneDNN's 1x1 convolutions of a
    /// ResNet-50 bottleneck and its downsampling, forward and backward, fp32 and bf16, both layouts. On an affected
    /// machine this does not return: the process dies.
    /// </summary>
    public static void ProbeInProcess()
    {
        // ResNet-50's 1x1 shapes at a 64 px input. The deep ones (many channels on a 4x4 or 2x2 map) are those that
        // crashed on the affected machine; the shallow ones ran there.
        (long In, long Out, long Size, long Stride)[] shapes =
        [
            (64, 256, 16, 1), (256, 64, 16, 1), (256, 512, 16, 2), (512, 128, 8, 1),
            (256, 1024, 4, 1), (512, 1024, 8, 2), (1024, 512, 4, 1), (512, 2048, 2, 1), (1024, 2048, 4, 2), (2048, 512,
                2, 1),
        ];
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            foreach (var channelsLast in new[] { true, false })
                foreach (var (cin, cout, size, stride) in shapes)
                {
                    using var scope = NewDisposeScope();
                    var x = randn(6, cin, size, size).to_type(dtype);
                    if (channelsLast) x = MemoryLayout.ToChannelsLast(x);
                    x.requires_grad_(true);
                    var w = randn(cout, cin, 1, 1).to_type(dtype).requires_grad_(true);
                    nn.functional.conv2d(x, w, strides: [stride, stride]).sum().backward();
                }
    }

    /// <summary>The choice: <paramref name="forced"/> (the environment variable's value) if set, else the record in
    /// <paramref name="cachePath"/> for this machine and build, else a probe run as <paramref name="probe"/> says,
    /// whose answer is then written there.</summary>
    internal static PointwiseChoice Decide(string? forced, string cachePath, ProcessStartInfo? probe)
    {
        switch (forced)
        {
            case "gemm": return new(true, $"{EnvironmentVariable}=gemm");
            case "conv": return new(false, $"{EnvironmentVariable}=conv");
            case { Length: > 0 } other: throw new ConfigException(
                $"{EnvironmentVariable}={other}: expected gemm or conv (or unset, to probe this machine)");
        }
        var (cpu, machine, library) = (CpuFeatures.Host.Key, Environment.MachineName,
            PrecisionCalibration.LibraryVersion);
        var cached = ReadCache(cachePath).LastOrDefault(r => r.Cpu == cpu && r.Machine == machine &&
            r.Library == library);
        if (cached is not null) return new(cached.Gemm,
            $"{cached.Why} (probed {cached.Probed:yyyy-MM-dd}, {cachePath})");
        if (probe is null)
            return new(false, "not probed: the probe starts this application again with a .NET startup hook, which " +
                "needs dotnet app.dll or the application's own host, with startup hooks on; " +
                $"set {EnvironmentVariable}=gemm if 1x1 convolutions kill the process with SIGFPE");
        var (result, conclusive) = RunProbe(probe);
        // Only a probe that ran gives an answer to keep; anything else is said, and probed again next time.
        if (conclusive)
            WriteCache(cachePath, new PointwiseProbeRecord { Cpu = cpu, Machine = machine, Library = library,
                Gemm = result.Gemm, Why = result.Why, Probed = DateTimeOffset.UtcNow });
        return result;
    }

    /// <summary>
    /// The probe's child: this very application started again, with this library as a .NET startup hook
    /// (<c>DOTNET_STARTUP_HOOKS</c>) that runs the probe and exits before the application's Main. So any program that
    /// references the library probes with its own runtime and dependencies, and no other executable is needed. Null
    /// when there is no managed entry assembly to start again.
    /// </summary>
    internal static ProcessStartInfo? ProbeCommand()
    {
        var entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        var library = typeof(Pointwise).Assembly.Location;
        if (string.IsNullOrEmpty(entry) || string.IsNullOrEmpty(library) || Environment.ProcessPath is not { } process)
            return null;
        if (AppContext.TryGetSwitch("System.StartupHookProvider.IsSupported", out var hooks) && !hooks)
            return null; // trimmed or configured without startup hooks: the child would run the application itself
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
        {
            // dotnet app.dll, or a test host's dotnet exec: the application's own runtime config and dependencies.
            psi.FileName = process;
            psi.ArgumentList.Add("exec");
            var deps = (AppContext.GetData("APP_CONTEXT_DEPS_FILES") as string)?.Split(';')[0];
            if (deps is { Length: > 0 } && File.Exists(deps))
            {
                var config = deps[..^".deps.json".Length] + ".runtimeconfig.json";
                if (File.Exists(config)) { psi.ArgumentList.Add("--runtimeconfig"); psi.ArgumentList.Add(config); }
                psi.ArgumentList.Add("--depsfile");
                psi.ArgumentList.Add(deps);
            }
            psi.ArgumentList.Add(entry);
        }
        // The application's own host (apphost or self-contained): itself, without arguments. Another process hosting
        // the application (IIS's w3wp, a custom host) is not started again.
        else if (string.Equals(Path.GetFileNameWithoutExtension(process), Path.GetFileNameWithoutExtension(entry),
                     StringComparison.OrdinalIgnoreCase)) psi.FileName = process;
        else return null;
        psi.Environment["DOTNET_STARTUP_HOOKS"] = library;
        psi.Environment[ProbeChildVariable] = "run";
        psi.Environment[EnvironmentVariable] = "conv";
        return psi;
    }

    /// <summary>The child's answer, and whether it is one to keep: only a child that started the probe and then
    /// passed or died gives one.</summary>
    static (PointwiseChoice Choice, bool Conclusive) RunProbe(ProcessStartInfo psi)
    {
        Process child;
        try { child = Process.Start(psi) ?? throw new InvalidOperationException("no process"); }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return (new(false, $"not probed: {psi.FileName} could not be started ({e.Message}); not cached"), false);
        }
        using (child)
        {
            var stdout = child.StandardOutput.ReadToEndAsync();
            var stderr = child.StandardError.ReadToEndAsync();
            if (!child.WaitForExit(TimeSpan.FromSeconds(120)))
            {
                child.Kill(entireProcessTree: true);
                return (new(false, "the probe did not finish in 120 s; not cached, probed again next time"), false);
            }
            child.WaitForExit();
            var output = stdout.Result;
            if (child.ExitCode == 0 && output.Contains(ProbePassed, StringComparison.Ordinal))
                return (new(false, "the probe ran oneDNN's 1x1 convolutions on this machine"), true);
            if (!output.Contains(ProbeStarted, StringComparison.Ordinal))
                return (new(false, $"not probed: the child (exit code {child.ExitCode}) did not start the probe, so " +
                    "the startup hook did not run; not cached"), false);
            var signal = child.ExitCode > 128 ? $" (signal {child.ExitCode - 128})" : "";
            var last = stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .LastOrDefault(l => !l.Contains("NNPACK", StringComparison.Ordinal));
            return (new(true,
                $"oneDNN's 1x1 convolution killed the probe on this machine: exit code " +
                $"{child.ExitCode}{signal}{(last is null ? "" : $", '{last}'")}"), true);
        }
    }

    internal static List<PointwiseProbeRecord> ReadCache(string path)
    {
        try { return File.Exists(path) ? JsonSerializer.Deserialize<List<PointwiseProbeRecord>>(File.ReadAllText(path),
            JsonOptions) ?? [] : []; }
        catch (JsonException) { return []; } // a damaged cache only costs a probe; it is rewritten below
    }

    static void WriteCache(string path, PointwiseProbeRecord record)
    {
        try
        {
            var records = ReadCache(path).Where(r => !(r.Cpu == record.Cpu &&
                r.Machine == record.Machine)).Append(record).ToList();
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var tmp = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(records, JsonOptions));
            File.Move(tmp, path, overwrite: true);
        }
        // read-only home: probe again next time
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // a file for people to read: "'" and '+' as written
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
