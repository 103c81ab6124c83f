namespace H2T.Evaluation;

/// <summary>Accuracy figures as this field reports them; percentages in [0, 100]. Plain data (no tensors).</summary>
public sealed record EvaluationResult(
    int Samples,
    double Top1,
    double Top5,
    double Head,
    double Medium,
    double Tail,
    double Ece,
    double Nll,
    double[] PerClassAccuracy,
    long[][] Confusion,
    CalibrationBin[]? Reliability = null)
{
    /// <summary>Every image's label, prediction and confidence, in the evaluated order; not part of final-eval.json
    /// (the run folder keeps it as test-predictions.json).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public ImagePredictions? Images { get; init; }

    /// <summary>Mean per-class accuracy ("All" on a balanced test set equals Top1).</summary>
    public double MeanClassAccuracy => PerClassAccuracy.Length == 0 ? 0 : PerClassAccuracy.Average();
}

/// <summary>One confidence bin of the reliability diagram: how many predictions, their mean confidence and accuracy
/// (%).</summary>
public sealed record CalibrationBin(double Lower, double Upper, long Count, double Confidence, double Accuracy);

/// <summary>Per-image test predictions, compact: three parallel arrays in the test set's order.</summary>
public sealed record ImagePredictions(int[] Labels, int[] Predicted, float[] Confidence);
