using H2T.Evaluation;
using H2T.Runtime;
using static TorchSharp.torch;

namespace H2T.Tests.Evaluation;

public sealed class MetricAccumulatorTests
{
    public MetricAccumulatorTests() => TorchRuntime.Initialize(2);

    [Fact]
    public void HandComputedExample()
    {
        using var scope = NewDisposeScope();
        // 4 classes; probabilities chosen so confidences are exact: softmax of log-probabilities.
        var probs = new float[,]
        {
            { 0.7f, 0.1f, 0.1f, 0.1f },   // label 0, correct, conf 0.7
            { 0.1f, 0.6f, 0.2f, 0.1f },   // label 2, wrong (pred 1), top-2 has it, conf 0.6
            { 0.1f, 0.1f, 0.1f, 0.7f },   // label 3, correct, conf 0.7
            { 0.25f, 0.3f, 0.2f, 0.25f }, // label 1, correct, conf 0.3
        };
        var logits = tensor(probs).log();
        var labels = tensor(new long[] { 0, 2, 3, 1 });
        var acc = new MetricAccumulator(4);
        acc.Add(logits, labels);
        var r = acc.Result([0], [1, 2], [3]);
        Assert.Equal(4, r.Samples);
        Assert.Equal(75.0, r.Top1, 6);
        Assert.Equal(100.0, r.Top5, 6);
        Assert.Equal([100.0, 100.0, 0.0, 100.0], r.PerClassAccuracy);
        Assert.Equal(100.0, r.Head, 6);
        Assert.Equal(50.0, r.Medium, 6);
        Assert.Equal(100.0, r.Tail, 6);
        Assert.Equal(1, r.Confusion[2][1]);
        // ECE, 15 bins of width 1/15: 0.3 -> bin 4 (acc 1, conf .3); 0.6 -> bin 8 (acc 0, conf .6); 0.7 x2 -> bin 10
        // (acc 1, conf .7)
        double ece = (1 * Math.Abs(1 - 0.3) + 1 * Math.Abs(0 - 0.6) + 2 * Math.Abs(1 - 0.7)) / 4;
        Assert.Equal(100 * ece, r.Ece, 4);
        double nll = -(Math.Log(0.7) + Math.Log(0.2) + Math.Log(0.7) + Math.Log(0.3)) / 4;
        Assert.Equal(nll, r.Nll, 5);
    }

    [Fact]
    public void BatchesAccumulateLikeOneBigBatch()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var logits = randn(50, 7);
        var labels = randint(0, 7, 50, dtype: int64);
        var whole = new MetricAccumulator(7);
        whole.Add(logits, labels);
        var parts = new MetricAccumulator(7);
        parts.Add(logits[..20], labels[..20]);
        parts.Add(logits[20..], labels[20..]);
        var a = whole.Result([0, 1], [2, 3, 4], [5, 6]);
        var b = parts.Result([0, 1], [2, 3, 4], [5, 6]);
        Assert.Equal(a.Top1, b.Top1);
        Assert.Equal(a.Ece, b.Ece, 9);
        Assert.Equal(a.PerClassAccuracy, b.PerClassAccuracy);
    }

    [Fact]
    public void WrongShapesAndLabelsAreRejected()
    {
        using var scope = NewDisposeScope();
        var acc = new MetricAccumulator(3);
        Assert.Throws<ArgumentException>(() => acc.Add(randn(2, 4), tensor(new long[] { 0, 1 })));
        Assert.Throws<ArgumentException>(() => acc.Add(randn(2, 3), tensor(new long[] { 0, 3 })));
    }
}
