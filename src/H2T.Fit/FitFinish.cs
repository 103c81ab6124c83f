using System.Globalization;
using System.Text;
using H2T.Evaluation;
using H2T.Onnx;
using H2T.Reporting;
using H2T.Runs;

namespace H2T.Fit;

/// <summary>A class the model does worst on, and the class its images are most often taken for.</summary>
public sealed record WeakClass(string Name, string Group, int TrainImages, int TestImages, double Accuracy,
    string? TakenFor, double TakenForShare);

/// <summary>summary.json: what the job chose, how it scores on the test split, and where everything is.</summary>
public sealed record FitResult
{
    public required FitPlan Plan { get; init; }
    /// <summary>"stage I classifier", "cRT (rho 0)" or "H2T (rho 0.3)": the model validation chose.</summary>
    public required string Chosen { get; init; }
    public required string Checkpoint { get; init; }
    /// <summary>Validation mean per-class accuracy of each candidate, by label.</summary>
    public required IReadOnlyDictionary<string, double> Validation { get; init; }
    public required double Head { get; init; }
    public required double Medium { get; init; }
    public required double Tail { get; init; }
    public required double MeanPerClass { get; init; }
    public required double Micro { get; init; }
    public required double Ece { get; init; }
    public required IReadOnlyList<WeakClass> Weakest { get; init; }
    public required string Folder { get; init; }
    public string? Model { get; init; }
    public string? Page { get; init; }
    public required string Card { get; init; }
    public required string ServeCommand { get; init; }
    public double WallSeconds { get; init; }
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>The job's last step: the choice on validation, the run page, the ONNX model, the model card and
/// summary.json. A page or export that fails is a warning, never a lost model: the checkpoint stays the
/// result.</summary>
static class FitFinish
{
    public static FitResult Write(FitOptions options, FitPlan plan, FitData data, string root, RunFolder stageOne,
        RunMetrics stageOneMetrics, SweepResult sweep, IFitObserver observer, Action<double> at,
        Func<double> elapsed)
    {
        // Validation is class-balanced, so its top-1 is its mean per-class accuracy: the figure the choice is on.
        var candidates = new List<(string Label, string Folder, double Val)>();
        if (stageOneMetrics.FinalValidation is { } v1) candidates.Add(("stage I classifier", stageOne.Path, v1.Top1));
        foreach (var r in sweep.Rows.Where(r => r.FinalValidation is not null))
            candidates.Add((r.Rho == 0 ? "cRT (rho 0)" : $"H2T (rho {r.Rho.ToString(CultureInfo.InvariantCulture)})",
                r.RunFolder, r.FinalValidation!.Top1));
        if (candidates.Count == 0) throw new InvalidOperationException(
            $"{root}: no run has validation figures to choose on");
        var best = candidates.OrderByDescending(c => c.Val).First();
        observer.Message("validation (mean per-class): " + string.Join(", ", candidates.Select(c =>
            string.Create(CultureInfo.InvariantCulture, $"{c.Label} {c.Val:F2}"))) + $"; chosen: {best.Label}");
        var run = new RunFolder(best.Folder);
        var final = run.ReadFinalEval() ?? throw new InvalidDataException(
            $"{run.FinalEvalFile}: missing; the run did not finish its evaluation");
        var warnings = new List<string>();
        at(0.2);

        string? page = Path.Combine(root, FitJob.PageFile);
        try
        {
            RunReport.Write(stageOne.Path, "stage I");
            if (best.Folder != stageOne.Path) RunReport.Write(best.Folder, best.Label);
            RunPage.Write(page, best.Folder == stageOne.Path ? [stageOne.Path] : [stageOne.Path, best.Folder],
                $"h2t fit: {Path.GetFileName(options.Data.TrimEnd('/'))}");
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ArgumentException
                                      or System.Text.Json.JsonException)
        {
            warnings.Add($"run page not written: {e.Message}");
            page = null;
        }
        at(0.5);

        string? model = Path.Combine(root, FitJob.ModelFile);
        try { OnnxExporter.Export(run.LastCheckpoint, model); }
        catch (Exception e) when (e is IOException or InvalidOperationException or NotSupportedException
                                      or ArgumentException)
        {
            warnings.Add($"ONNX model not written: {e.Message}");
            model = null;
        }
        at(0.8);

        var weakest = Weakest(final, data, 3);
        var serve = $"h2t serve {Quote(model ?? run.LastCheckpoint)}";
        var result = new FitResult
        {
            Plan = plan, Chosen = best.Label, Checkpoint = run.LastCheckpoint,
            Validation = candidates.ToDictionary(c => c.Label, c => c.Val), Head = final.Head,
            Medium = final.Medium, Tail = final.Tail, MeanPerClass = final.MeanClassAccuracy, Micro = final.Top1,
            Ece = final.Ece, Weakest = weakest, Folder = root, Model = model, Page = page,
            Card = Path.Combine(root, FitJob.CardFile), ServeCommand = serve, Warnings = warnings,
            WallSeconds = elapsed(),
        };
        AtomicFile.Write(result.Card, s => s.Write(Encoding.UTF8.GetBytes(Card(options, result, data))));
        AtomicFile.WriteJson(Path.Combine(root, FitJob.SummaryFile), result);
        foreach (var w in warnings) observer.Message($"warning: {w}");
        return result;
    }

    static string Quote(string path) => path.Contains(' ', StringComparison.Ordinal) ? $"\"{path}\"" : path;

    /// <summary>The tail classes (all classes when the tail is empty) with the lowest test accuracy, each with the
    /// class its images are most often predicted as.</summary>
    internal static IReadOnlyList<WeakClass> Weakest(EvaluationResult final, FitData data, int count)
    {
        var classes = Enumerable.Range(0, data.ClassNames.Count).Where(c => data.Test[c] > 0).ToList();
        var tail = classes.Where(c => data.Groups[c] == "tail").ToList();
        return [.. (tail.Count > 0 ? tail : classes).OrderBy(c => final.PerClassAccuracy[c]).Take(count).Select(c =>
        {
            var row = final.Confusion[c];
            long total = row.Sum();
            int other = Enumerable.Range(0, row.Length).Where(j => j != c).OrderByDescending(j => row[j])
                .DefaultIfEmpty(-1).First();
            bool any = other >= 0 && row[other] > 0;
            return new WeakClass(data.ClassNames[c], data.Groups[c], data.Train[c], data.Test[c],
                final.PerClassAccuracy[c], any ? data.ClassNames[other] : null,
                any && total > 0 ? 100.0 * row[other] / total : 0);
        })];
    }

    /// <summary>MODEL_CARD.md, in the sections a model card has (Mitchell et al., 2019): details, intended use, data,
    /// how it was trained, evaluation by group, limits.</summary>
    static string Card(FitOptions options, FitResult r, FitData data)
    {
        var s = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        s.Append(ci, $"# Model card: {Path.GetFileName(options.Data.TrimEnd('/'))}\n\n");
        s.Append(ci, $"Made by `h2t fit` (H2T.NET {ModelCard.LibraryVersion}) on {DateTime.UtcNow:yyyy-MM-dd}.\n\n");
        s.Append("## Model\n");
        s.Append(ci, $"- {r.Plan.Describe()}.\n");
        s.Append(ci, $"- Chosen on the class-balanced validation split: **{r.Chosen}** ({r.Checkpoint}).\n");
        if (r.Model is not null) s.Append(ci, $"- ONNX: {r.Model}; serve it with `{r.ServeCommand}`.\n");
        s.Append("\n## Intended use\n");
        s.Append(ci, $"Classifying images into the {data.ClassNames.Count} classes below, drawn like the training ")
            .Append("images. It was not tested on images unlike them; check it on your own before relying on it.\n\n");
        s.Append("## Data\n");
        s.Append(ci, $"Source: {Path.GetFullPath(options.Data)}. Train / validation / test images per class " +
            $"(group):\n\n| class | train | val | test | group |\n|---|---|---|---|---|\n");
        for (int c = 0; c < data.ClassNames.Count; c++)
            s.Append(ci, $"| {data.ClassNames[c]} | {data.Train[c]} | {data.Validation[c]} | {data.Test[c]} | " +
                $"{data.Groups[c]} |\n");
        s.Append("\n## Evaluation (test split)\n");
        s.Append(ci, $"| Head | Medium | Tail | mean per-class | micro | ECE |\n|---|---|---|---|---|---|\n" +
            $"| {r.Head:F2} | {r.Medium:F2} | {r.Tail:F2} | {r.MeanPerClass:F2} | {r.Micro:F2} | {r.Ece:F2} |\n\n");
        s.Append("Head / Medium / Tail are mean per-class accuracies (%) within each group; micro is the share of " +
            "test images right, which the head classes dominate when the test split is long-tailed.\n\n");
        s.Append("Weakest classes:\n");
        foreach (var w in r.Weakest)
            s.Append(ci, $"- {w.Name} ({w.Group}, {w.TrainImages} training images): {w.Accuracy:F1}%")
                .Append(w.TakenFor is null ? "\n"
                    : string.Create(ci, $", most often taken for {w.TakenFor} ({w.TakenForShare:F0}%)\n"));
        s.Append("\n## Limits\n");
        s.Append("- Scores come from one split and one training seed; a class with few test images has a wide " +
            "margin of error.\n");
        s.Append("- The test split comes from the same source as the training images: it does not measure how the " +
            "model does on images from elsewhere.\n");
        return s.ToString();
    }
}
