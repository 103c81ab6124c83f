using H2T.Data;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using H2T.Settings;

namespace H2T.Configuration;

/// <summary>
/// A config that passed its whole check. Trainers take this, so a config is checked exactly once on its way to a run
/// (by the binder for the CLI, by <see cref="RunConfigChecks.Check(StageOneConfig)"/> for library callers) and
/// the trainer, the engine and the methods trust what they get.
/// </summary>
public sealed class Checked<T> where T : class
{
    internal Checked(T value) => Value = value;

    public T Value { get; }

    public override string ToString() => $"checked {Value}";
}

/// <summary>
/// A run config's whole check: its values (the records' own checks, in Settings, which knows no table) and its names
/// against the one table of each concern (backbones and heads in Models, losses in Losses, samplers in Data, stage-II
/// methods in <see cref="StageTwoMethods"/>).
/// </summary>
public static class RunConfigChecks
{
    public static Checked<StageOneConfig> Check(this StageOneConfig config)
    {
        Validate(config);
        return new(config);
    }

    public static Checked<StageTwoConfig> Check(this StageTwoConfig config)
    {
        Validate(config);
        return new(config);
    }

    public static Checked<SweepConfig> Check(this SweepConfig config)
    {
        Validate(config);
        return new(config);
    }

    public static void Validate(this StageOneConfig config)
    {
        CheckValuesAndLoss(config);
        CheckSampler(config.Sampler, "sampler", "sampler.weighted_sampler.type");
        if (!ModelFactory.BackboneNames.Contains(config.Backbone, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException(
                $"unknown backbone '{config.Backbone}'; expected one of: " +
                $"{string.Join(", ", ModelFactory.BackboneNames)}", "backbone");
        if (TuningNames.NeedsTokens(config.Tuning) && !ModelFactory.HasTokens(config.Backbone))
            throw new ConfigException(
                $"tuning {TuningNames.Name(config.Tuning)} needs a ViT backbone; {config.Backbone} has no tokens " +
                    $"(for a " +
                "CNN: full, frozen, bias, norm or ssf)", "tuning");
        if (!ModelFactory.HeadNames.Contains(config.Classifier, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException(
                $"unknown classifier '{config.Classifier}'; expected one of: " +
                $"{string.Join(", ", ModelFactory.HeadNames)}", "classifier");
    }

    public static void Validate(this StageTwoConfig config)
    {
        CheckValuesAndLoss(config);
        CheckStageTwoNames(config);
    }

    public static void Validate(this SweepConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.ValidateValues();
        CheckLoss(config.StageTwo);
        CheckStageTwoNames(config.StageTwo);
        var swept = config.Options.Count > 0 ? $"sweep.{config.Options[0].Key}" : "sweep.rho";
        foreach (var p in config.Points())
        {
            try
            {
                CheckLoss(p.Config);
                CheckStageTwoNames(p.Config);
            }
            catch (ConfigException e) when (config.Options.Count > 0)
            {
                throw new ConfigException($"sweep member {p.Label}: {e.Message}", swept);
            }
            if (config.Rhos.Length > 1 && p.Config.Fusion != StageTwoMethods.H2T)
                throw new ConfigException(
                    $"a sweep over rho needs H2T; fusion '{p.Config.Fusion}' does not read rho (sweep its own " +
                    $"options instead, " +
                                          "e.g. --sweep feature_mixup.alpha=0.2,0.4 --rho 0)",
                                              config.Options.Any(o => o.Key == "fusion") ? "sweep.fusion" : "fusion");
        }
    }

    static void CheckStageTwoNames(StageTwoConfig config)
    {
        CheckSampler(config.TailSampler, "tail sampler", "sampler.weighted_sampler.type");
        CheckSampler(config.HeadSampler, "head sampler", "sampler.dual_sample.type");
        StageTwoMethods.Check(config);
    }

    /// <summary>The run's values, the loss name, then the stage's values: the order of the one check before the
    /// split.</summary>
    static void CheckValuesAndLoss(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.ValidateRunValues();
        CheckLoss(config);
        config.ValidateStageValues();
    }

    static void CheckLoss(RunConfig config)
    {
        if (!LossFactory.Names.Contains(config.Loss.Type, StringComparer.OrdinalIgnoreCase))
            throw new ConfigException(
                $"unknown loss '{config.Loss.Type}'; expected one of: {string.Join(", ", LossFactory.Names)}",
                "loss.type");
        LossFactory.CheckOptions(config.Loss);
    }

    static void CheckSampler(string name, string what, string key)
    {
        if (!Samplers.Names.Contains(name))
            throw new ConfigException($"unknown {what} '{name}'; expected one of: {string.Join(", ", Samplers.Names)}",
                key);
    }
}
