using System.Diagnostics;
using H2T.Data;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>
/// The training loops as the trainers run them (loader + mixup + step; paired loaders + two frozen forwards + fusion +
/// classifier step), for a fixed number of batches on Fashion-MNIST-LT, with and without background prefetch: the gap
/// to the isolated step is the loop's overhead.
/// </summary>
public static class LoopBench
{
    public static IEnumerable<object> Run(int batches = 30)
    {
        var splits = DatasetCatalog.Load(new DataConfig("fashion-mnist"));
        foreach (var prefetch in new[] { 0, 2 })
        {
            yield return StageOne(splits, prefetch, batches);
            yield return StageTwo(splits, prefetch, batches);
        }
    }

    static object StageOne(DatasetSplits splits, int prefetch, int batches)
    {
        manual_seed(0);
        using var backbone = new ResNetCifar(32, 1);
        using var head = new LinearHead(64, 10);
        using var opt = optim.SGD(backbone.parameters().Concat(head.parameters()), 0.1, momentum: 0.9, weight_decay: 2e-4);
        using var loss = LossFactory.Create(new LossConfig(), splits.TrainClassCounts);
        using var loader = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 0), 128, splits.Norm, splits.TrainAugment, 0, prefetch: prefetch);
        var rng = new Random(0);
        using var gen = new Generator(1);
        backbone.train(); head.train();
        var times = new List<double>();
        var sw = Stopwatch.StartNew();
        int i = 0;
        foreach (var batch in loader.Epoch(0))
        {
            using var b = batch;
            using var scope = NewDisposeScope();
            var (mixed, ya, yb, lam) = Mixup.Apply(b.Images, b.Labels, 1.0, rng, gen);
            var l = loss.ForwardMixed(head.call(backbone.call(mixed)), ya, yb, lam);
            opt.zero_grad(); l.backward(); opt.step();
            l.item<float>();
            times.Add(sw.Elapsed.TotalMilliseconds); sw.Restart();
            if (++i == batches) break;
        }
        double median = BenchStats.Median(times.Skip(3).ToList());
        Console.WriteLine($"loop stage1 fashion-mnist-LT prefetch {prefetch}: median {median:F0} ms per batch of 128");
        return new { name = $"loop-stage1-fmnist-prefetch{prefetch}", batch = 128, median_ms = median };
    }

    static object StageTwo(DatasetSplits splits, int prefetch, int batches)
    {
        manual_seed(0);
        using var backbone = new ResNetCifar(32, 1);
        using var head = new LinearHead(64, 10);
        foreach (var p in backbone.parameters()) p.requires_grad = false;
        using var opt = optim.SGD(head.parameters(), 0.02, momentum: 0.9, weight_decay: 5e-4);
        int n = splits.Train.Count;
        using var tail = new BatchLoader(splits.Train, Samplers.ClassBalanced(splits.Train.Labels, 1, n), 128, splits.Norm, splits.TrainAugment, 1, prefetch: prefetch);
        using var headSide = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 2), 128, splits.Norm, splits.TrainAugment, 2, prefetch: prefetch);
        using var paired = new PairedLoader(tail, headSide);
        var fusion = new HeadToTailFusion(0.25);
        var rng = new Random(0);
        var times = new List<double>();
        var sw = Stopwatch.StartNew();
        int i = 0;
        foreach (var (t, h) in paired.Epoch(0))
        {
            using var tb = t;
            using var hb = h;
            using var scope = NewDisposeScope();
            backbone.train(); head.train();
            Tensor fused;
            using (no_grad()) fused = fusion.Fuse(backbone.call(tb.Images), backbone.call(hb.Images), rng).Fused;
            var l = nn.functional.cross_entropy(head.call(fused), tb.Labels);
            opt.zero_grad(); l.backward(); opt.step();
            l.item<float>();
            times.Add(sw.Elapsed.TotalMilliseconds); sw.Restart();
            if (++i == batches) break;
        }
        double median = BenchStats.Median(times.Skip(3).ToList());
        Console.WriteLine($"loop stage2 (rho 0.25) fashion-mnist-LT prefetch {prefetch}: median {median:F0} ms per batch of 128");
        return new { name = $"loop-stage2-fmnist-prefetch{prefetch}", batch = 128, median_ms = median };
    }
}
