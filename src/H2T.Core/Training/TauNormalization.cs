using System.Globalization;
using H2T.Runs;
using H2T.Data;
using H2T.Evaluation;
using H2T.Models;
using H2T.Settings;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// Decouple's tau-normalised classifier (Kang et al., ICLR 2020): w_c / ||w_c||^tau, bias dropped. Post hoc, with no
/// training, so a whole grid of tau costs one backbone pass per split. Each tau is a different linear head on the
/// same pooled features. tau is chosen on a validation split when there is one.
/// </summary>
public static class TauNormalization
{
    public static LinearHead Apply(LinearHead source, double tau)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!(tau >= 0) || double.IsInfinity(tau)) throw new ConfigException($"tau must be a number >= 0, got {tau}");
        var head = new LinearHead(source.InFeatures, source.NumClasses);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var w = source.Fc.weight!;
        var norms = w.norm(1, keepdim: true).clamp_min(1e-12);
        head.Fc.weight!.copy_(w / norms.pow(tau));
        head.Fc.bias!.zero_();
        return head.to(w.device);
    }

    public sealed record Row(double Tau, EvaluationResult? Validation, EvaluationResult Test);

    /// <summary>The grid, and the chosen tau's checkpoint (written to <see cref="Output"/> when a tau was
    /// chosen).</summary>
    public sealed record Outcome(IReadOnlyList<Row> Rows, double? Selected, string Output);

    /// <summary>Where the chosen checkpoint goes when no output is named: beside the source, as
    /// tau-norm.ckpt.</summary>
    public static string DefaultOutput(string checkpoint) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpoint))!, "tau-norm.ckpt");

    /// <summary>
    /// h2t tau-norm's one entry: takes the output's folder first, so a folder another process writes is refused
    /// before any evaluation runs; then the grid; then the checkpoint of the tau chosen on validation.
    /// </summary>
    public static Outcome Run(string checkpoint, IReadOnlyList<double> taus, string? dataPath, int validationPerClass,
        string? output,
        Device device, ComputePrecision? precision = null)
    {
        output = Path.GetFullPath(output ?? DefaultOutput(checkpoint));
        using var hold = RunFolderLock.Acquire(Path.GetDirectoryName(output)!);
        var (rows, selected) = Grid(checkpoint, taus, dataPath, validationPerClass, device, precision);
        if (selected is { } tau) Save(checkpoint, tau, output);
        return new Outcome(rows, selected, output);
    }

    /// <summary>The grid on the data <paramref name="checkpoint"/> was trained on (or at <paramref name="dataPath"/>),
    /// with a validation split of <paramref name="validationPerClass"/> images per class when it has none (0:
    /// none).</summary>
    public static (IReadOnlyList<Row> Rows, double? Selected) Grid(string checkpoint, IReadOnlyList<double> taus,
        string? dataPath, int validationPerClass,
        Device device, ComputePrecision? precision = null)
    {
        var data = CheckpointData.Resolve(checkpoint, Checkpoint.ReadMeta(checkpoint), dataPath,
            validationPerClass > 0 ? validationPerClass : null);
        return Grid(checkpoint, taus, DatasetCatalog.Load(data), device, precision);
    }

    /// <summary>Evaluates every tau on validation (if any) and test; returns the rows and the tau chosen on
    /// validation.</summary>
    public static (IReadOnlyList<Row> Rows, double? Selected) Grid(string checkpoint, IReadOnlyList<double> taus,
        DatasetSplits splits, Device device,
        ComputePrecision? precision = null)
    {
        using var models = Checkpoint.Open(checkpoint, splits.Train.Shape.Channels, splits.NumClasses, precision);
        var (backbone, head) = (models.Backbone, Linear(checkpoint, models.Head));
        backbone.to(device);
        head.to(device);
        var heads = taus.Select(t => Apply(head, t)).ToList();
        try
        {
            using var test = Evaluator.TestLoader(splits, 256, device);
            var testResults = Evaluator.EvaluateHeads(backbone, heads, test, splits.NumClasses, splits.Groups);
            using var validation = Evaluator.ValidationLoader(splits, 256, device);
            var valResults = validation is null ? null : Evaluator.EvaluateHeads(backbone, heads, validation,
                splits.NumClasses, splits.Groups);
            var rows = taus.Select((t, i) => new Row(t, valResults?[i], testResults[i])).ToList();
            double? selected = valResults is null ? null : rows.OrderByDescending(r => r.Validation!.Top1).ThenBy(r =>
                r.Tau).First().Tau;
            return (rows, selected);
        }
        finally
        {
            foreach (var h in heads) h.Dispose();
        }
    }

    /// <summary>Writes <paramref name="source"/> with its classifier tau-normalised, as a checkpoint eval/export
    /// read.</summary>
    public static void Save(string source, double tau, string output)
    {
        using var models = Checkpoint.Open(source);
        using var normed = Apply(Linear(source, models.Head), tau);
        using var hold = RunFolderLock.Acquire(Path.GetDirectoryName(Path.GetFullPath(output))!);
        Checkpoint.Save(output, models.Meta with { From = Path.GetFullPath(source) }, models.Backbone, normed, null);
    }

    static LinearHead Linear(string path, ClassifierHead head) => head as LinearHead
        ?? throw new ConfigException($"{path}: tau-normalisation needs a linear classifier, this one is '{head.Kind}'");

    public static string Label(double tau) => tau.ToString("0.###", CultureInfo.InvariantCulture);
}
