using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;

namespace H2T.MlNetPeer;

/// <summary>One input row of the ML.NET pipeline.</summary>
public sealed class ImageRow
{
    /// <summary>Absolute path of the image file.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>Class name.</summary>
    public string Label { get; set; } = "";
}

/// <summary>What the fitted pipeline predicts for one test row.</summary>
public sealed class PredictionRow
{
    /// <summary>The predicted class name (the trainer's key mapped back to its value).</summary>
    public string PredictedName { get; set; } = "";
}

/// <summary>The predictions for the test images, in their order, and the wall times of the two phases.</summary>
public sealed record PeerOutcome(string[] Predicted, double FitSeconds, double PredictSeconds, object Trainer,
    string[] Pipeline);

/// <summary>
/// ML.NET's documented transfer learning for images: load, resize to 224 x 224 (aspect kept, centre crop), extract
/// planar RGB pixels in 0..255, ResNet-18 image featurizer (CNTK's ImageNet ResNet-18 as ONNX from
/// Microsoft.ML.DnnImageFeaturizer.ResNet18; its own preprocessing graph swaps to BGR and subtracts the mean image),
/// frozen; then a multiclass logistic regression (L-BFGS maximum entropy) on the 512 pooled features.
/// </summary>
public static class PeerRun
{
    const int Side = 224;

    /// <summary>Fits the pipeline on <paramref name="train"/> and predicts <paramref name="test"/>.</summary>
    public static PeerOutcome Run(IReadOnlyList<LabelledImage> train, IReadOnlyList<LabelledImage> test, int threads)
    {
        // The clock includes building the pipeline: the featurizer opens its two ONNX Runtime sessions there.
        var clock = Stopwatch.StartNew();
        var ml = new MLContext(seed: 0);
        var trainer = new LbfgsMaximumEntropyMulticlassTrainer.Options
        {
            LabelColumnName = "LabelKey",
            FeatureColumnName = "Features",
            NumberOfThreads = threads,
        };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(ImageRow.Label))
            .Append(ml.Transforms.LoadImages("Image", imageFolder: "", inputColumnName: nameof(ImageRow.ImagePath)))
            .Append(ml.Transforms.ResizeImages("Image", Side, Side, "Image",
                ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor.Center))
            // ExtractPixels' defaults are what the featurizer's preprocessing graph expects: planar R, G, B, 0..255.
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image"))
            .Append(ml.Transforms.DnnFeaturizeImage("Features",
                m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"))
            // The featurizer leaves several 3 x 224 x 224 columns behind; caching those for every image would take
            // gigabytes, so only the key and the 512 features are kept before the cache.
            .Append(ml.Transforms.SelectColumns("LabelKey", "Features"))
            // L-BFGS reads the data once per iteration: the cache makes that one featurization pass, as ML.NET's
            // samples do after a DNN featurizer.
            .AppendCacheCheckpoint(ml)
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(trainer))
            .Append(ml.Transforms.Conversion.MapKeyToValue(nameof(PredictionRow.PredictedName), "PredictedLabel"));

        var model = pipeline.Fit(ml.Data.LoadFromEnumerable(Progress(train, "featurize+train")));
        double fitSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var scored = model.Transform(ml.Data.LoadFromEnumerable(Progress(test, "predict")));
        var predicted = ml.Data.CreateEnumerable<PredictionRow>(scored, reuseRowObject: false)
            .Select(p => p.PredictedName).ToArray();
        double predictSeconds = clock.Elapsed.TotalSeconds;
        if (predicted.Length != test.Count)
            throw new InvalidOperationException(
                $"ML.NET returned {predicted.Length} predictions for {test.Count} test rows");

        var settings = new
        {
            name = nameof(LbfgsMaximumEntropyMulticlassTrainer),
            catalog = "MulticlassClassification.Trainers.LbfgsMaximumEntropy",
            l1_regularization = trainer.L1Regularization,
            l2_regularization = trainer.L2Regularization,
            optimization_tolerance = trainer.OptimizationTolerance,
            history_size = trainer.HistorySize,
            maximum_number_of_iterations = trainer.MaximumNumberOfIterations,
            enforce_non_negativity = trainer.EnforceNonNegativity,
            number_of_threads = trainer.NumberOfThreads,
            note = "ML.NET's defaults; no feature normalization (ML.NET adds none unless asked)",
        };
        string[] steps =
        [
            "MapValueToKey(Label)",
            "LoadImages(absolute paths)",
            $"ResizeImages({Side}x{Side}, IsoCrop, Center)",
            "ExtractPixels(planar RGB, scale 1, offset 0)",
            "DnnFeaturizeImage(ResNet18: ResNetPreprocess.onnx (RGB->BGR, minus mean image) + ResNet18.onnx, " +
                "512 pooled features, frozen)",
            "SelectColumns(LabelKey, Features)",
            "AppendCacheCheckpoint",
            "LbfgsMaximumEntropy",
            "MapKeyToValue(PredictedLabel)",
        ];
        return new PeerOutcome(predicted, fitSeconds, predictSeconds, settings, steps);
    }

    /// <summary>
    /// The rows as ML.NET reads them, with a line on stderr every 1,000 rows: the featurizer is the slow part, and it
    /// runs as the rows are read. A pass that reads only the labels (MapValueToKey's fit) shows as a fast pass.
    /// </summary>
    static IEnumerable<ImageRow> Progress(IReadOnlyList<LabelledImage> rows, string phase)
    {
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < rows.Count; i++)
        {
            if (i > 0 && i % 1000 == 0)
                Console.Error.WriteLine($"  {phase}: {i}/{rows.Count} rows read, {clock.Elapsed.TotalSeconds:F0} s");
            yield return new ImageRow { ImagePath = rows[i].Path, Label = rows[i].Label };
        }
    }
}
