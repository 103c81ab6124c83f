using H2T.Data;
using H2T.Losses;
using H2T.Models;
using H2T.Settings;

namespace H2T.Configuration;

/// <summary>
/// A run config's whole check: its values (the records' own checks, in Settings, which knows no table) and its names
/// against the one table of each concern (backbones and heads in Models, losses in Losses, samplers in Data), in the
/// order a single check had them before the split. Trainers and commands call this before any run folder exists.
/// </summary>
public static class RunConfigChecks
{
    public static void Validate(this StageOneConfig config)
    {
        CheckValuesAndLoss(config);
        CheckSampler(config.Sampler, "sampler");
        if (!ModelFactory.BackboneNames.Contains(config.Backbone, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException($"unknown backbone '{config.Backbone}'; expected one of: {string.Join(", ", ModelFactory.BackboneNames)}");
        if (!ModelFactory.HeadNames.Contains(config.Classifier, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException($"unknown classifier '{config.Classifier}'; expected one of: {string.Join(", ", ModelFactory.HeadNames)}");
    }

    public static void Validate(this StageTwoConfig config)
    {
        CheckValuesAndLoss(config);
        CheckSampler(config.TailSampler, "tail sampler");
        CheckSampler(config.HeadSampler, "head sampler");
    }

    public static void Validate(this SweepConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        // Each member as its single run checks it (the base config's own rho is not used), then the sweep's own.
        foreach (var rho in config.Rhos) (config.StageTwo with { Rho = rho }).Validate();
        config.ValidateValues();
    }

    /// <summary>The run's values, the loss name, then the stage's values: the order of the one check before the split.</summary>
    static void CheckValuesAndLoss(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.ValidateRunValues();
        if (!LossFactory.Names.Contains(config.Loss.Type, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException($"unknown loss '{config.Loss.Type}'; expected one of: {string.Join(", ", LossFactory.Names)}");
        config.ValidateStageValues();
    }

    static void CheckSampler(string name, string what)
    {
        if (!Samplers.Names.Contains(name))
            throw new ConfigException($"unknown {what} '{name}'; expected one of: {string.Join(", ", Samplers.Names)}");
    }
}
