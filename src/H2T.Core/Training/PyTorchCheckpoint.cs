using System.Collections;
using System.Text.Json;
using H2T.Runs;
using H2T.Data;
using H2T.Models;
using H2T.Interop;
using H2T.Settings;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>What an import did: the checkpoint written, the layout recognised, and a line per mapping fact.</summary>
public sealed record ImportResult(CheckpointMeta Meta, string Layout, IReadOnlyList<string> Report);

/// <summary>
/// Moves checkpoints between H2T.NET and PyTorch. Reads what the authors' and their peers' code saves with
/// <c>torch.save</c> (<see cref="PyTorchWeights"/> lists the layouts), checks every tensor name and shape against our
/// model before anything is written, and says what it mapped. Writes ours back in the reference's layout, loadable
/// with <c>torch.load</c> into the reference's ResNet feature extractor + classifier.
/// </summary>
public static class PyTorchCheckpoint
{
    /// <summary>torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle stream.</summary>
    public static bool LooksLikePyTorch(string path) => TorchSaveReader.LooksLikeTorchSave(path);

    /// <summary>
    /// Builds our backbone + classifier for <paramref name="splits"/>, loads the PyTorch tensors into them (names and
    /// shapes checked; strict unless <paramref name="allowMissing"/>) and writes an H2T.NET checkpoint that
    /// <c>stage2</c>, <c>sweep</c> and <c>eval</c> read. A MiSLAS stage-II file with its LWS scales becomes a stage-II
    /// checkpoint with the <c>lws</c> classifier.
    /// </summary>
    public static ImportResult Import(string pytorchPath, string outPath, string backboneName, string classifierKind,
        DatasetSplits splits, DataConfig data, bool allowMissing = false)
    {
        using var weights = PyTorchWeights.Read(pytorchPath);
        int inChannels = splits.Train.Shape.Channels;
        if (weights.LwsScales is not null) classifierKind = "lws";
        using var backbone = ModelFactory.CreateBackbone(backboneName, inChannels);
        using var head = ModelFactory.CreateHead(classifierKind, backbone, splits.NumClasses);
        var lines = new List<string> { $"layout: {weights.Layout}" };
        lines.AddRange(StateDictLoader.Load(pytorchPath, "backbone", weights.Backbone, backbone, allowMissing).Lines());
        if (weights.Classifier.Count == 0)
            throw new ConfigException(
                $"{pytorchPath}: no classifier tensors (expected 'state_dict_classifier' with fc.weight / fc.bias, " +
                $"or fc.* in the state dict)");
        var classifier = new Dictionary<string, Tensor>(weights.Classifier, StringComparer.Ordinal);
        if (weights.LwsScales is { } scales) classifier["scales"] = scales;
        lines.AddRange(StateDictLoader.Load(pytorchPath, "classifier", classifier, head, allowMissing).Lines());
        lines.AddRange(weights.Notes);
        var epochs = weights.Epoch ?? 0;
        var meta = new CheckpointMeta
        {
            Stage = weights.LwsScales is null ? "stage1" : "stage2", Epoch = Math.Max(0, epochs - 1),
                TotalEpochs = epochs,
            Architecture = backbone.Architecture, InChannels = inChannels, NumClasses = splits.NumClasses,
                Classifier = head.Kind,
            ClassCounts = splits.TrainClassCounts, Dataset = splits.Name,
                DataConfig = JsonSerializer.SerializeToElement(data.WithAbsolutePath(), AtomicFile.Json),
            ImportedFrom = Path.GetFullPath(pytorchPath), ClassNames = [.. splits.ClassNames],
                Preprocessing = ImagePreprocessing.Of(splits),
        };
        Checkpoint.Save(outPath, meta, backbone, head, null);
        return new ImportResult(meta, weights.Layout, lines);
    }

    /// <summary>
    /// Writes an H2T.NET checkpoint as a <c>torch.save</c>-compatible dict: <c>state_dict_model</c> (backbone),
    /// <c>state_dict_classifier</c>, <c>epoch</c>, <c>best_acc1</c> and <c>h2t_meta</c> (our metadata as JSON).
    /// </summary>
    public static void Export(string checkpointPath, string outPath)
    {
        using var models = Checkpoint.Open(checkpointPath);
        var (meta, backbone, head) = models;
        var table = new Hashtable
        {
            ["epoch"] = meta.Epoch + 1,
            ["best_acc1"] = meta.BestTop1,
            ["state_dict_model"] = backbone.state_dict(),
            ["state_dict_classifier"] = head.state_dict(),
            ["h2t_meta"] = JsonSerializer.Serialize(meta, AtomicFile.Json),
        };
        AtomicFile.Write(outPath, s => PyTorchPickler.PickleStateDict(s, table, leaveOpen: true));
    }
}
