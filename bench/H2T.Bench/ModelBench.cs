using System.Diagnostics;
using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>Isolated model timings: one ResNet-32 SGD step and one eval forward at batch 128.</summary>
public static class ModelBench
{
    public static object ResNet32Step(int channels, int size, int warmup = 5, int iters = 20,
        ComputePrecision precision = ComputePrecision.Fp32)
    {
        manual_seed(0);
        using var backbone = new ResNetCifar(32, channels) { Compute = new(precision) };
        using var head = new LinearHead(backbone.FeatureChannels, 10);
        using var opt = optim.SGD(backbone.parameters().Concat(head.parameters()), 0.1, momentum: 0.9,
            weight_decay: 2e-4);
        using var x = randn(128, channels, size, size);
        using var y = randint(0, 10, 128, dtype: int64);
        var train = new List<double>();
        backbone.train(); head.train();
        for (int i = 0; i < warmup + iters; i++)
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            opt.zero_grad();
            nn.functional.cross_entropy(head.call(backbone.call(x)), y).backward();
            opt.step();
            if (i >= warmup) train.Add(sw.Elapsed.TotalMilliseconds);
        }
        var eval = new List<double>();
        backbone.eval(); head.eval();
        using (no_grad())
            for (int i = 0; i < warmup + iters; i++)
            {
                using var scope = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                head.call(backbone.call(x)).sum().item<float>();
                if (i >= warmup) eval.Add(sw.Elapsed.TotalMilliseconds);
            }
        // The evaluation pass as Evaluator runs it: BatchNorm folded into the convolutions.
        var folded = new List<double>();
        using (no_grad())
        using (var f = backbone.FoldedForInference()!)
            for (int i = 0; i < warmup + iters; i++)
            {
                using var scope = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                head.call(f.call(x)).sum().item<float>();
                if (i >= warmup) folded.Add(sw.Elapsed.TotalMilliseconds);
            }
        double tm = BenchStats.Median(train), em = BenchStats.Median(eval), fm = BenchStats.Median(folded);
        var p = MixedPrecision.Name(precision);
        Console.WriteLine(
            $"resnet32 {channels}x{size}x{size} batch 128 {p}: train step median {tm:F1} ms, eval forward median " +
            $"{em:F1} ms, folded {fm:F1} ms");
        return new { name = $"resnet32-step-{channels}x{size}", precision = p, batch = 128, train_step_median_ms = tm,
            eval_forward_median_ms = em, folded_eval_forward_median_ms = fm };
    }
}
