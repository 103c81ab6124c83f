using H2T.Models;
using H2T.Settings;

namespace H2T.Interop;

/// <summary>
/// Initialises a backbone from PyTorch weights, the usual start on real long-tailed data: a torchvision state dict
/// (resnet50, resnet152, resnext50_32x4d: a plain OrderedDict with a 1000-class fc.*) or any checkpoint layout
/// <see cref="PyTorchWeights"/> reads. Strict: every backbone tensor must be in the file with its shape. The file's
/// classifier is not used; ours starts fresh for the dataset's classes.
/// </summary>
public static class PretrainedBackbone
{
    /// <summary>Loads the weights; returns the lines that say what was loaded and what was not used.</summary>
    public static IReadOnlyList<string> Load(string path, Backbone backbone, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        if (!File.Exists(path))
            throw new ConfigException($"pretrained: {path}: file not found (expected a torch.save file of weights, e.g. torchvision's resnet152 state dict)");
        using var weights = PyTorchWeights.Read(path);
        var lines = new List<string> { $"pretrained: {Path.GetFullPath(path)} ({weights.Layout})" };
        lines.AddRange(StateDictLoader.Load(path, "pretrained backbone", weights.Backbone, backbone).Lines());
        var fc = weights.Classifier.TryGetValue("fc.weight", out var w) ? $" (its fc is [{string.Join(", ", w.shape)}])" : "";
        lines.Add(weights.Classifier.Count > 0
            ? $"pretrained: the file's classifier is not used{fc}; the classifier is initialised afresh for {numClasses} classes"
            : $"pretrained: the classifier is initialised afresh for {numClasses} classes");
        lines.AddRange(weights.Notes.Select(n => "pretrained: " + n));
        return lines;
    }
}
