using System.Globalization;

namespace H2T.Settings;

/// <summary>A stage-II sweep: one <see cref="StageTwoConfig"/> (its Rho ignored) trained for every value in
/// <see cref="Rhos"/> at once. <see cref="ValidationPerClass"/> adds a validation split when stage I had none.</summary>
public sealed record SweepConfig(StageTwoConfig StageTwo, double[] Rhos, int ValidationPerClass = 100)
{
    /// <summary>The value checks, each rho's included; <c>H2T.Configuration.RunConfigChecks.Validate</c> adds the names.</summary>
    public void ValidateValues()
    {
        // The stage-II values once (its own rho is not used), then each rho once.
        (StageTwo with { Rho = 0 }).ValidateValues();
        if (Rhos.Length == 0) throw new ConfigException("rho: the sweep needs at least one value", "sweep.rho");
        foreach (var r in Rhos) StageTwoConfig.CheckRho(r, "sweep.rho");
        if (Rhos.Distinct().Count() != Rhos.Length) throw new ConfigException($"rho: values repeat in [{string.Join(", ", Rhos)}]", "sweep.rho");
        if (ValidationPerClass < 0) throw new ConfigException($"val_per_class must be >= 0, got {ValidationPerClass}", "val_per_class");
    }

    /// <summary>The values a sweep tries when none are given: 0 to 1 in steps of 0.1.</summary>
    public static IReadOnlyList<double> DefaultRhos { get; } = ParseRhos("0:1:0.1");

    /// <summary>rho values: "0:1:0.1" (start:stop:step, stop included) or "0,0.25,0.5" (<see cref="ValueGrid"/>).</summary>
    public static double[] ParseRhos(string spec) => ValueGrid.Parse(spec, "rho");

    public static string FolderName(double rho) => string.Create(CultureInfo.InvariantCulture, $"rho{rho:0.###}");
}
