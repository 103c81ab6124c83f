using System.Reflection;

namespace H2T.MlNetPeer;

/// <summary>The CPU the figures were measured on, as /proc/cpuinfo names it, and its bf16 instruction sets.</summary>
public sealed record MachineInfo(string CpuModel, bool Avx512Bf16, bool AmxBf16, int LogicalCpus)
{
    /// <summary>Reads the first "model name" and "flags" lines of /proc/cpuinfo (Linux); elsewhere: unknown.</summary>
    public static MachineInfo Read()
    {
        string model = "unknown";
        string[] flags = [];
        if (File.Exists("/proc/cpuinfo"))
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon < 0) continue;
                string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                if (key == "model name" && model == "unknown") model = value;
                else if (key == "flags" && flags.Length == 0) flags = value.Split(' ');
                if (model != "unknown" && flags.Length > 0) break;
            }
        }
        return new MachineInfo(model, flags.Contains("avx512_bf16"), flags.Contains("amx_bf16"),
            Environment.ProcessorCount);
    }

    /// <summary>The informational version (without its commit) of the assembly defining <paramref name="type"/>.
    /// </summary>
    public static string VersionOf(Type type)
    {
        var assembly = type.Assembly;
        string? v = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        v ??= assembly.GetName().Version?.ToString() ?? "unknown";
        int plus = v.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? v : v[..plus];
    }
}
