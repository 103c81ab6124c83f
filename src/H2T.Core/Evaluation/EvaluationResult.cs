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
    long[][] Confusion)
{
    /// <summary>Mean per-class accuracy ("All" on a balanced test set equals Top1).</summary>
    public double MeanClassAccuracy => PerClassAccuracy.Length == 0 ? 0 : PerClassAccuracy.Average();
}
