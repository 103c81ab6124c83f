using System.Globalization;

namespace H2T.Settings;

/// <summary>A list of values written as start:stop:step (stop included) or as a comma list: a sweep's rho, tau-norm's
/// tau. Errors name the setting they belong to.</summary>
public static class ValueGrid
{
    public static double[] Parse(string spec, string name)
    {
        ArgumentNullException.ThrowIfNull(spec);
        double Num(string s) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
                ? v : throw new ConfigException(
                    $"{name} '{spec}': '{s}' is not a number (expected start:stop:step or a comma list)");
        var parts = spec.Split(':', StringSplitOptions.TrimEntries);
        if (parts.Length == 3)
        {
            double a = Num(parts[0]), b = Num(parts[1]), step = Num(parts[2]);
            if (!(step > 0) ||
                b < a) throw new ConfigException($"{name} '{spec}': expected start <= stop and step > 0");
            int n = (int)Math.Floor((b - a) / step + 1e-9) + 1;
            // Rounded to 10 decimals so 0.1 * 3 is 0.3, the value a user typed, not 0.30000000000000004.
            return Enumerable.Range(0, n).Select(i => Math.Round(a + i * step, 10)).ToArray();
        }
        if (parts.Length != 1) throw new ConfigException($"{name} '{spec}': expected start:stop:step or a comma list");
        return spec.Split(',',
            StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(Num).ToArray();
    }
}
