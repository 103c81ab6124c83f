using static TorchSharp.torch;

namespace H2T.Evaluation;

/// <summary>
/// Accumulates predictions batch by batch without keeping logits: confusion matrix, top-5 hits, calibration bins
/// (15 equal-width confidence bins, as the reference's ECE) and the summed negative log-likelihood.
/// </summary>
public sealed class MetricAccumulator
{
    public const int EceBins = 15;
    readonly int numClasses;
    readonly long[][] confusion;
    readonly long[] binCount = new long[EceBins];
    readonly double[] binConfidence = new double[EceBins], binCorrect = new double[EceBins];
    readonly List<int> labels = [], predicted = [];
    readonly List<float> confidence = [];
    long samples, top5Hits;
    double nllSum;

    public MetricAccumulator(int numClasses)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 1);
        this.numClasses = numClasses;
        confusion = Enumerable.Range(0, numClasses).Select(_ => new long[numClasses]).ToArray();
    }

    /// <summary>Adds a batch: logits N x C (any device), labels N (int64).</summary>
    public void Add(Tensor logits, Tensor labels)
    {
        if (logits.dim() != 2 || logits.shape[1] != numClasses)
            throw new ArgumentException($"expected logits N x {numClasses}, got [{string.Join(", ", logits.shape)}]");
        using var scope = NewDisposeScope();
        if (labels.numel() > 0)
        {
            long lo = labels.min().cpu().item<long>(), hi = labels.max().cpu().item<long>();
            if (lo < 0 ||
                hi >= numClasses) throw new ArgumentException($"label {(lo < 0 ? lo : hi)} outside [0, {numClasses})");
        }
        var logp = logits.detach().to(float32).log_softmax(1);
        var (conf, pred) = logp.max(1);
        int k = Math.Min(5, numClasses);
        var topk = logp.topk(k, 1).indexes;
        var lab = labels.to(int64).to(logp.device);
        var hit5 = topk.eq(lab.unsqueeze(1)).any(1);
        var nll = -logp.gather(1, lab.unsqueeze(1)).squeeze(1);
        var predA = pred.cpu().data<long>().ToArray();
        var labA = lab.cpu().data<long>().ToArray();
        var confA = conf.exp().cpu().data<float>().ToArray();
        top5Hits += hit5.sum().cpu().item<long>();
        nllSum += nll.sum().cpu().item<float>();
        for (int i = 0; i < predA.Length; i++)
        {
            confusion[labA[i]][predA[i]]++;
            int bin = Math.Min(EceBins - 1, (int)Math.Ceiling(confA[i] * EceBins) - 1);
            bin = Math.Max(bin, 0);
            binCount[bin]++;
            binConfidence[bin] += confA[i];
            binCorrect[bin] += predA[i] == labA[i] ? 1 : 0;
            this.labels.Add((int)labA[i]);
            predicted.Add((int)predA[i]);
            confidence.Add(confA[i]);
        }
        samples += predA.Length;
    }

    public EvaluationResult Result(IReadOnlyList<int> head, IReadOnlyList<int> medium, IReadOnlyList<int> tail)
    {
        var perClass = new double[numClasses];
        long correct = 0;
        for (int c = 0; c < numClasses; c++)
        {
            long row = confusion[c].Sum();
            correct += confusion[c][c];
            perClass[c] = row == 0 ? double.NaN : 100.0 * confusion[c][c] / row;
        }
        double GroupMean(IReadOnlyList<int> g)
        {
            var vals = g.Select(c => perClass[c]).Where(v => !double.IsNaN(v)).ToList();
            return vals.Count == 0 ? double.NaN : vals.Average();
        }
        double ece = 0;
        for (int b = 0; b < EceBins; b++)
            if (binCount[b] > 0)
                ece += Math.Abs(binConfidence[b] / binCount[b] - binCorrect[b] / binCount[b]) * binCount[b] / samples;
        return new EvaluationResult(
            (int)samples,
            samples == 0 ? 0 : 100.0 * correct / samples,
            samples == 0 ? 0 : 100.0 * top5Hits / samples,
            GroupMean(head), GroupMean(medium), GroupMean(tail),
            100.0 * ece,
            samples == 0 ? 0 : nllSum / samples,
            perClass,
            confusion.Select(r => (long[])r.Clone()).ToArray(),
            Enumerable.Range(0, EceBins).Select(b => new CalibrationBin((double)b / EceBins, (double)(b + 1) / EceBins,
                binCount[b],
                binCount[b] == 0 ? double.NaN : 100.0 * binConfidence[b] / binCount[b],
                binCount[b] == 0 ? double.NaN : 100.0 * binCorrect[b] / binCount[b])).ToArray())
        {
            Images = new ImagePredictions([.. labels], [.. predicted], [.. confidence]),
        };
    }
}
