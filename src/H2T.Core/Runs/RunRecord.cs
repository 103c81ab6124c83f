using System.Text.Json;
using H2T.Data;
using H2T.Models;
using H2T.Settings;

namespace H2T.Runs;

/// <summary>
/// What a run is, said once: its config.json (written at the start) and the metadata of every checkpoint it writes
/// are both built from this record, so the two files cannot disagree about the stage, config, data or arithmetic.
/// </summary>
public sealed record RunRecord(string Stage, RunConfig Config, DatasetSplits Splits, string Device)
{
    /// <summary>Stage II: the stage-I checkpoint (full path).</summary>
    public string? From { get; init; }
    /// <summary>A sweep member: the sweep folder.</summary>
    public string? Sweep { get; init; }
    /// <summary>How the validation split was made, when there is one.</summary>
    public string? Validation { get; init; }
    /// <summary>The data config checkpoints record (stage I: the run's own, with an absolute path; stage II: stage
    /// I's).</summary>
    public JsonElement? DataConfig { get; init; }

    /// <summary>config.json: the stage, the config, the data's name and class counts, the device (and where stage II
    /// started).</summary>
    public void WriteConfigFile(RunFolder run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var record = new Dictionary<string, object?>
        {
            ["stage"] = Stage, ["config"] = Config, ["dataset"] = Splits.Name,
                ["class_counts"] = Splits.TrainClassCounts, ["device"] = Device,
        };
        if (From is not null) record["from"] = From;
        if (Sweep is not null) record["sweep"] = Sweep;
        if (Validation is not null) record["validation"] = Validation;
        // The record's own type, not RunConfig's: the stage's fields are written too.
        AtomicFile.WriteJson(run.ConfigFile, record);
    }

    /// <summary>The config as checkpoints and resume compare it.</summary>
    public JsonElement ConfigJson() => JsonSerializer.SerializeToElement(Config, Config.GetType(), AtomicFile.Json);

    /// <summary>The config's record at its defaults: what a run started before a setting existed used for it.</summary>
    public JsonElement DefaultConfigJson() =>
        JsonSerializer.SerializeToElement(Activator.CreateInstance(Config.GetType()), Config.GetType(),
            AtomicFile.Json);

    /// <summary>The metadata every checkpoint of this run carries (the epoch is added when it is saved).</summary>
    public CheckpointMeta Meta(Backbone backbone, ClassifierHead head)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(head);
        return new CheckpointMeta
        {
            Architecture = backbone.Architecture, InChannels = Splits.Train.Shape.Channels,
                NumClasses = Splits.NumClasses, Classifier = head.Kind,
            CosineScale = head is CosineHead cosine ? cosine.Scale : 1.0,
            Tuning = backbone.TuningState is { } t ? TuningNames.Name(t.Kind) : null,
                TuningDim = backbone.TuningState?.Dim ?? 0,
            ClassCounts = Splits.TrainClassCounts, Dataset = Splits.Name, Seed = Config.Seed, Config = ConfigJson(),
            DataConfig = DataConfig, From = From,
            Precision = ComputeNames.Name(backbone.Precision),
                Layout = ComputeNames.Name(backbone.ChannelsLast ? FeatureLayout.ChannelsLast : FeatureLayout.Nchw),
            ClassNames = [.. Splits.ClassNames], Preprocessing = ImagePreprocessing.Of(Splits),
        };
    }
}
