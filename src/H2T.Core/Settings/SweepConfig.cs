using System.Globalization;

namespace H2T.Settings;

/// <summary>A stage-II sweep: one <see cref="StageTwoConfig"/> (its Rho ignored) trained for every value in
/// <see cref="Rhos"/> at once. <see cref="ValidationPerClass"/> adds a validation split when stage I had none.</summary>
public sealed record SweepConfig(StageTwoConfig StageTwo, double[] Rhos, int ValidationPerClass = 100)
{
    /// <summary>The value checks, each rho's included; <c>H2T.Configuration.RunConfigChecks.Validate</c> adds the names.</summary>
    public void ValidateValues()
    {
        if (Rhos.Length == 0) throw new ConfigException("rho: the sweep needs at least one value");
        foreach (var r in Rhos) (StageTwo with { Rho = r }).ValidateValues();
        if (Rhos.Distinct().Count() != Rhos.Length) throw new ConfigException($"rho: values repeat in [{string.Join(", ", Rhos)}]");
        if (ValidationPerClass < 0) throw new ConfigException($"val_per_class must be >= 0, got {ValidationPerClass}");
    }

    /// <summary>"0:1:0.1" (start:stop:step, stop included) or "0,0.25,0.5".</summary>
    public static double[] ParseRhos(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        static double Num(string s, string spec) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
                ? v : throw new ConfigException($"rho '{spec}': '{s}' is not a number (expected start:stop:step or a comma list)");
        var parts = spec.Split(':', StringSplitOptions.TrimEntries);
        if (parts.Length == 3)
        {
            double a = Num(parts[0], spec), b = Num(parts[1], spec), step = Num(parts[2], spec);
            if (!(step > 0) || b < a) throw new ConfigException($"rho '{spec}': expected start <= stop and step > 0");
            int n = (int)Math.Floor((b - a) / step + 1e-9) + 1;
            // Rounded to 10 decimals so 0.1 * 3 is 0.3, the value a user typed, not 0.30000000000000004.
            return Enumerable.Range(0, n).Select(i => Math.Round(a + i * step, 10)).ToArray();
        }
        if (parts.Length != 1) throw new ConfigException($"rho '{spec}': expected start:stop:step or a comma list");
        return spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => Num(s, spec)).ToArray();
    }

    public static string FolderName(double rho) => string.Create(CultureInfo.InvariantCulture, $"rho{rho:0.###}");
}
