namespace H2T.Settings;

/// <summary>Checks both stages share.</summary>
internal static class RunChecks
{
    /// <summary>Every <paramref name="evalEvery"/> epochs (0: never early), and always after the last.</summary>
    public static bool ShouldEvaluate(int epoch, int epochs, int evalEvery) =>
        epoch == epochs - 1 || (evalEvery > 0 && (epoch + 1) % evalEvery == 0);

    public static void Validate(int epochs, int evalEvery, int prefetch, OptimConfig optim, ScheduleConfig schedule)
    {
        if (epochs < 1) throw new ConfigException($"epochs must be >= 1, got {epochs}");
        if (evalEvery < 0) throw new ConfigException($"eval_every must be >= 0, got {evalEvery}");
        if (prefetch < 0) throw new ConfigException($"prefetch must be >= 0, got {prefetch}");
        optim.Validate();
        schedule.Validate();
    }
}
