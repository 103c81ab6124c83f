using System.Runtime.InteropServices;
using H2T.NativeCompat;
using TorchSharp;

namespace H2T.Runtime;

/// <summary>
/// The one place that brings libtorch up: checks (and if needed applies) the native compatibility fix before the
/// first TorchSharp call, resolves the device once and sets the thread count.
/// </summary>
public static class TorchRuntime
{
    static readonly Lock Gate = new();
    static NativeFixStatus? status;

    /// <summary>What the native fix found. Safe to call before TorchSharp is loaded; never loads it.</summary>
    public static NativeFixStatus NativeFix
    {
        get
        {
            lock (Gate)
            {
                return status ??= EnsureNativeFix();
            }
        }
    }

    static NativeFixStatus EnsureNativeFix()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
            return new(null, "not needed", "only Linux builds of libLibTorchSharp need it");
        var lib = LocateLibTorchSharp();
        if (lib is null)
            return new(null, "not found", $"libLibTorchSharp.so is not next to {typeof(torch).Assembly.Location}");
        try
        {
            var needs = ElfVersionNeeds.ReadNeeds(lib);
            var probe = ElfVersionNeeds.Fix(lib, dryRun: true);
            var weakened = needs.Where(n => n.IsWeak).Select(n => n.Version).ToList();
            if (!probe.Loadable)
                return new(lib, "cannot fix", probe.ToString());
            if (probe.Messages.Any(m => m.EndsWith("marked weak", StringComparison.Ordinal)))
            {
                // The build step did not run on this output (e.g. copied by hand): patch now, before the first load.
                var done = ElfVersionNeeds.Fix(lib);
                return new(lib, "applied at start-up", done.ToString());
            }
            return weakened.Count > 0
                ? new(lib, "applied", $"weak version requirement(s): {string.Join(", ", weakened)}; {probe}")
                : new(lib, "not needed", probe.ToString());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return new(lib, "check failed", e.Message);
        }
    }

    static string? LocateLibTorchSharp()
    {
        var dir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        string[] candidates =
        [
            Path.Combine(dir, "libLibTorchSharp.so"),
            Path.Combine(dir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
        ];
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>Applies the native fix if needed, then loads libtorch and sets intra-op threads.</summary>
    public static void Initialize(int? threads = null)
    {
        _ = NativeFix;
        _ = MallocTuning;
        torch.InitializeDeviceType(DeviceType.CPU);
        var n = threads ?? Environment.ProcessorCount;
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(threads), n, "threads must be at least 1");
        torch.set_num_threads(n);
    }

    /// <summary>What the malloc tuning did ("off", "applied", or why not); applied once, by <see
    /// cref="Initialize"/>.</summary>
    public static string MallocTuning => mallocTuning.Value;

    static readonly Lazy<string> mallocTuning = new(TuneMalloc); // once per process: it is process-wide state

    // glibc returns large freed blocks to the kernel (mmap threshold, trim) and libtorch frees and re-allocates its
    // activation buffers every step, so each step pays page faults to map them again. Keeping them in the heap is
    // the same as MALLOC_MMAP_THRESHOLD_=32M MALLOC_TRIM_THRESHOLD_=2G in the environment (speed only; results are
    // identical). H2T_MALLOC_TUNING=0 turns it off.
    const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int param, int value);

    static string TuneMalloc()
    {
        if (Environment.GetEnvironmentVariable("H2T_MALLOC_TUNING") == "0") return "off (H2T_MALLOC_TUNING=0)";
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return "not applicable (not Linux)";
        if (Environment.GetEnvironmentVariable(
            "MALLOC_MMAP_THRESHOLD_") is not null) return "left to the environment (MALLOC_MMAP_THRESHOLD_ set)";
        try
        {
            bool ok = Mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 & Mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 1;
            return ok ? "applied (mmap threshold 32 MiB, no trim)" : "refused by the C library";
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return "not available (no glibc mallopt)";
        }
    }

    /// <summary>The libtorch this build references: "cpu" (TorchSharp-cpu) or "cuda" (TorchSharp-cuda-*), from the
    /// build switch TorchBackend.</summary>
    public static string Backend { get; } =
        typeof(TorchRuntime).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .OfType<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a =>
            a.Key == "H2T.TorchBackend")?.Value ?? "cpu";

    /// <summary>Resolves a device name (cpu, cuda, cuda:N) or throws a message a user can act on.</summary>
    public static torch.Device ResolveDevice(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var lower = name.Trim().ToLowerInvariant();
        if (lower == "cpu") return torch.CPU;
        if (lower == "cuda" || lower.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int index = 0;
            if (lower.Length > 4 && !int.TryParse(lower[5..], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out index))
                throw new DeviceUnavailableException(
                    $"--device {name}: expected cuda or cuda:N with N a device number (0, 1, ...)");
            if (Backend != "cuda")
                throw new DeviceUnavailableException(
                    $"--device {name}: CUDA is not available: this build references TorchSharp-cpu (libtorch without " +
                        $"CUDA). On a machine " +
                    "with an NVIDIA GPU and driver, build the CUDA one: H2T_TORCH_BACKEND=cuda ./h2t ... (or dotnet " +
                        "build -p:TorchBackend=cuda), " +
                    "which references TorchSharp-cuda-linux / -windows (libtorch 2.10, CUDA 12.8). That path is " +
                        "untested here: no GPU and no CUDA packages on the machines this project is tested on.");
            if (!torch.cuda.is_available())
                throw new DeviceUnavailableException(
                    $"--device {name}: CUDA is not available: this is the CUDA build (TorchSharp-cuda), but libtorch " +
                        $"found no usable GPU. " +
                    "Check that nvidia-smi lists one, that the driver supports CUDA 12.8 (driver 570 or later), and " +
                        "that CUDA_VISIBLE_DEVICES does not hide it.");
            var count = torch.cuda.device_count();
            if (index >= count)
                throw new DeviceUnavailableException(
                    $"--device {name}: this machine has {count} CUDA device{(count == 1 ? "" : "s")} " +
                    $"(cuda:0{(count > 1 ? $" .. cuda:{count - 1}" : "")})");
            return torch.device(lower);
        }
        throw new DeviceUnavailableException($"--device {name}: expected cpu, cuda or cuda:N");
    }
}

/// <summary>A requested device cannot be used here.</summary>
public sealed class DeviceUnavailableException(string message) : Exception(message);
