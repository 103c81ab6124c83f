namespace H2T.Runtime;

/// <summary>
/// What this CPU offers for bf16, read from <c>/proc/cpuinfo</c> (Linux): its model name and the
/// <c>avx512_bf16</c> (AMD Zen 4 and 5, Intel Cooper Lake on) and <c>amx_bf16</c> (Intel Sapphire Rapids on) flags,
/// its vendor and its family / model numbers (which tell AMD's Zen 4, family 25, from Zen 5, family 26). oneDNN runs
/// bf16 convolutions on either unit; without both, bf16 is emulated and slower than fp32.
/// </summary>
public sealed record CpuFeatures(string Model, bool Avx512Bf16, bool AmxBf16, string Vendor = "", int Family = -1,
    int ModelNumber = -1)
{
    static readonly Lazy<CpuFeatures> Current = new(() => Parse(File.Exists("/proc/cpuinfo") ?
        File.ReadAllText("/proc/cpuinfo") : ""));

    public static CpuFeatures Host => Current.Value;

    /// <summary>True when the CPU has bf16 units (either flag).</summary>
    public bool HasBf16Units => Avx512Bf16 || AmxBf16;

    /// <summary>An AMD CPU (vendor_id AuthenticAMD, or "AMD" in the model name when no vendor was read).</summary>
    public bool IsAmd => Vendor == "AuthenticAMD" || (Vendor.Length == 0 && Model.Contains("AMD",
        StringComparison.Ordinal));

    public static CpuFeatures Parse(string cpuinfo)
    {
        ArgumentNullException.ThrowIfNull(cpuinfo);
        string model = "unknown", vendor = "";
        int family = -1, number = -1;
        var flags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in cpuinfo.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (key == "model name" && model == "unknown") model = value;
            else if (key == "vendor_id" && vendor.Length == 0) vendor = value;
            else if (key == "cpu family" && family < 0 && int.TryParse(value,
                System.Globalization.CultureInfo.InvariantCulture, out var f)) family = f;
            else if (key == "model" && number < 0 && int.TryParse(value,
                System.Globalization.CultureInfo.InvariantCulture, out var m)) number = m;
            else if (key == "flags" && flags.Count == 0) flags.UnionWith(value.Split(' ',
                StringSplitOptions.RemoveEmptyEntries));
        }
        return new CpuFeatures(model, flags.Contains("avx512_bf16"), flags.Contains("amx_bf16"), vendor, family,
            number);
    }

    /// <summary>AMD's core generation from the family number where it has AVX-512 (Zen 4: family 25, Zen 5: 26), else
    /// null.</summary>
    public string? AmdGeneration => !IsAmd || !Avx512Bf16 ? null
        : Family switch { 25 => "Zen 4", 26 => "Zen 5", < 0 => "of unknown family", _ => $"family {Family}" };

    /// <summary>What identifies this kind of CPU for a calibration record: vendor, model name, family / model, bf16
    /// flags.</summary>
    public string Key => $"{Vendor}|{Model}|{Family}/{ModelNumber}|avx512_bf16={Avx512Bf16}|amx_bf16={AmxBf16}";

    public override string ToString() =>
        $"{Model}{(Family >= 0 ? $" (family {Family} model {ModelNumber}{Generation})" : "")}; " +
        $"avx512_bf16 {(Avx512Bf16 ? "yes" : "no")}, amx_bf16 {(AmxBf16 ? "yes" : "no")}";

    string Generation => AmdGeneration is { } g ? $", {g}" : "";
}
