using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Settings;

namespace H2T.Training;

/// <summary>
/// Where a stage-II run (stage2, sweep) starts: the H2T.NET stage-I checkpoint and the data it is trained on. The one
/// place that turns flags or a config into that, so every stage-II command reads a checkpoint the same way.
/// </summary>
public sealed record StageTwoStart(string StageOneCheckpoint, DataConfig Data)
{
    /// <summary>
    /// From flags: <paramref name="from"/> must be an H2T.NET checkpoint (a PyTorch one is refused with the command
    /// that imports it); its data config is used, with <paramref name="dataPath"/> when the files moved and a
    /// validation split when asked.
    /// </summary>
    public static StageTwoStart FromCheckpoint(string from, string? dataPath, int? validationPerClass)
    {
        RequireFile(from, "--from");
        if (PyTorchCheckpoint.LooksLikePyTorch(from))
            throw new ConfigException(
                $"--from {from}: a PyTorch checkpoint; convert it with `h2t import {from} --dataset ... --backbone " +
                $"... --out stage1.ckpt`, " +
                "or run a config whose 'resume' names it (h2t stage2 --config FILE)");
        return Of(from, dataPath, validationPerClass);
    }

    /// <summary>From the library: an H2T.NET checkpoint and the data it records (found at <paramref name="dataPath"/>
    /// when it moved), with a validation split when asked; errors name the file, not a command-line option.</summary>
    public static StageTwoStart Of(string stageOneCheckpoint, string? dataPath, int? validationPerClass) =>
        new(stageOneCheckpoint, CheckpointData.Resolve(stageOneCheckpoint, Checkpoint.ReadMeta(stageOneCheckpoint),
            dataPath, validationPerClass));

    /// <summary>
    /// From a stage-2 config: --from when given, else its <c>resume</c>. An H2T.NET checkpoint must agree with the
    /// config's data keys (dataset, imbalance, long-tail seed, backbone, class count; its class groups apply). A
    /// PyTorch one (the reference's .pth.tar) is imported into <paramref name="importTo"/> with the config's dataset
    /// and
    /// backbone, when given; without it (a sweep) it is refused.
    /// </summary>
    public static StageTwoStart FromConfig(ExperimentConfig experiment, string file, string? fromFlag, string? dataPath,
        int validationPerClass,
        string? importTo = null, Action<string>? note = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        var from = !string.IsNullOrWhiteSpace(fromFlag) ? RequireFile(fromFlag, "--from")
            : RequireFile(experiment.Resume ??
                throw new ConfigException($"{file}: resume: the stage-I checkpoint is required (or pass --from)"),
                $"{file}: resume:");
        int valPerClass = experiment.Data.ValidationPerClass > 0 ? experiment.Data.ValidationPerClass :
            validationPerClass;
        if (PyTorchCheckpoint.LooksLikePyTorch(from))
        {
            if (importTo is null)
                throw new ConfigException(
                    $"{from}: a PyTorch checkpoint; import it first (h2t import) or run h2t stage2 --config, which " +
                    $"imports it");
            var data = experiment.Data with { DataPath = dataPath ?? experiment.Data.DataPath,
                ValidationPerClass = valPerClass };
            var splits = DatasetCatalog.Load(data);
            experiment.CheckNumClasses(splits.NumClasses, splits.Name);
            note?.Invoke(
                $"importing the PyTorch checkpoint {from} as {experiment.StageOne.Backbone} + " +
                $"{experiment.StageOne.Classifier} -> {importTo}");
            PyTorchCheckpoint.Import(from, importTo, experiment.StageOne.Backbone, experiment.StageOne.Classifier,
                splits, data with { ValidationPerClass = 0 });
            return new(importTo, data);
        }
        var meta = Checkpoint.ReadMeta(from);
        var fromData = CheckpointData.Resolve(from, meta, dataPath ?? experiment.Data.DataPath,
            valPerClass > 0 ? valPerClass : null);
        CheckAgainstCheckpoint(experiment, fromData, from);
        if (experiment.BackboneEntry is { } be && !string.Equals(experiment.StageOne.Backbone, meta.Architecture,
            StringComparison.OrdinalIgnoreCase))
            throw be.Error(
                $"the stage-I checkpoint {from} is a {meta.Architecture}, the config says " +
                $"{experiment.StageOne.Backbone}");
        if (experiment.Data.Groups is { } groups) fromData = fromData with { Groups = groups };
        experiment.CheckNumClasses(meta.NumClasses, meta.Dataset);
        return new(from, fromData);
    }

    /// <summary>The data, loaded (with its validation split when the start asks for one).</summary>
    public DatasetSplits LoadSplits() => DatasetCatalog.Load(Data);

    static string RequireFile(string path, string what) =>
        File.Exists(path) ? path : throw new ConfigException($"{what} {path}: checkpoint not found");

    /// <summary>The config's dataset, imbalance and long-tail seed must be the ones stage I trained on.</summary>
    static void CheckAgainstCheckpoint(ExperimentConfig experiment, DataConfig fromCheckpoint, string path)
    {
        foreach (var e in experiment.DataEntries)
        {
            var (mine, theirs) = e.Key switch
            {
                "dataset" => ((object)experiment.Data.Dataset, (object)fromCheckpoint.Dataset),
                "imb_factor" => (experiment.Data.ImbFactor, fromCheckpoint.ImbFactor),
                "imb_type" => (experiment.Data.ImbType, fromCheckpoint.ImbType),
                "lt_seed" => (experiment.Data.LongTailSeed, fromCheckpoint.LongTailSeed),
                _ => ((object)0, (object)0),
            };
            if (!Equals(mine, theirs))
                throw e.Error(
                    $"the stage-I checkpoint {path} was trained with {e.Key} {theirs}, the config says {mine}");
        }
    }
}
