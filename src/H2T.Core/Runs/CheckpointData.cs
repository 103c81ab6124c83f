using System.Text.Json;
using H2T.Data;
using H2T.Evaluation;
using H2T.Settings;

namespace H2T.Runs;

/// <summary>The data a checkpoint was trained on, as its metadata records it (absolute paths since format 2), and
/// where that data is now: the one place eval, stage II, tau-norm, predict and the embedding plot read it.</summary>
public static class CheckpointData
{
    /// <summary>The data config for a later stage: the stage-I checkpoint's, with a validation split of
    /// <paramref name="validationPerClass"/> images per class when asked and stage I had none.</summary>
    public static DataConfig Resolve(string path, CheckpointMeta meta, string? dataPathOverride,
        int? validationPerClass)
    {
        var data = Of(path, meta);
        if (dataPathOverride is not null) data = data with { DataPath = dataPathOverride };
        else if (data.DataPath is { } stored && !File.Exists(stored) && !Directory.Exists(stored))
            throw new ConfigException(
                $"{path}: {(meta.Stage == "stage2" ? "stage II" : "stage I")} read its data from {stored}, which is " +
                $"not there any more (moved?); " +
                                      "pass --data PATH to say where it is now");
        if (validationPerClass is { } v && data.ValidationPerClass == 0) data = data with { ValidationPerClass = v };
        return data;
    }

    /// <summary>The data config a later checkpoint records: <paramref name="from"/>'s, with the absolute path the data
    /// was read from this time (it may have moved since, and been found with --data). Unchanged: the same
    /// JSON.</summary>
    public static JsonElement? Recorded(CheckpointMeta from, DataConfig? readFrom)
    {
        ArgumentNullException.ThrowIfNull(from);
        if (from.DataConfig is not { } json || readFrom?.DataPath is not { } path) return from.DataConfig;
        var stored = json.Deserialize<DataConfig>(AtomicFile.Json);
        var absolute = Path.GetFullPath(path);
        return stored is null || stored.DataPath == absolute ? from.DataConfig
            : JsonSerializer.SerializeToElement(stored with { DataPath = absolute }, AtomicFile.Json);
    }

    /// <summary>The data <c>h2t eval</c> tests a checkpoint on: its own (if moved, found with --data), or
    /// <paramref name="dataset"/>, another dataset with the same classes, read from <paramref
    /// name="dataPath"/>.</summary>
    public static DataConfig ForEvaluation(string path, CheckpointMeta meta, string? dataset, string? dataPath)
    {
        var own = Of(path, meta);
        return dataset is null ? Resolve(path, meta, dataPath, null) : own with { Dataset = dataset,
            DataPath = dataPath ?? own.DataPath };
    }

    public static DataConfig Of(string path, CheckpointMeta meta)
    {
        if (meta.DataConfig is not { } json) throw new ConfigException(
            $"{path}: checkpoint has no data config; pass the dataset explicitly");
        return json.Deserialize<DataConfig>(AtomicFile.Json) ??
            throw new ConfigException($"{path}: unreadable data config");
    }
}

/// <summary>A checkpoint evaluated on its test set: what <c>h2t eval</c> prints and writes, and which engine computed
/// it.</summary>
public sealed record CheckpointEvaluation(CheckpointMeta Meta, DatasetSplits Splits, EvaluationResult Result,
    ComputePrecision Precision, string Engine)
{
    /// <summary>The test-time ensemble the figures were computed with (null: one view per image).</summary>
    public TestTimeEnsemble? TestTime { get; init; }
}
