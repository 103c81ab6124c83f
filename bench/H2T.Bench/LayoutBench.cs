using H2T.Settings;
using System.Diagnostics;
using H2T.Models;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>
/// NCHW against channels-last feature maps (<see cref="Backbone.ChannelsLast"/>), interleaved in rounds so that both
/// layouts see the same machine load: the ResNet-32 SGD step and the frozen, train-mode-BatchNorm forward of stage II
/// at batch 128, for ResNet-32 on 3x32x32 and ResNet-8 on 1x28x28. Reports each round's medians and the median over
/// rounds of the per-round ratio.
/// </summary>
public static class LayoutBench
{
    public static IEnumerable<object> Run(int rounds = 3)
    {
        // The ResNet-32 on CIFAR-sized input, and the demo's ResNet-8 on Fashion-MNIST (one channel: the
        // layout is set after the stem there, see Backbone.Stem).
        foreach (var (depth, channels, size) in new[] { (32, 3, 32), (8, 1, 28) })
            foreach (var r in Run(depth, channels, size, rounds)) yield return r;
    }

    static List<object> Run(int depth, int channels, int size, int rounds)
    {
        var res = new List<object>();
        var shape = $"resnet{depth} {channels}x{size}x{size}";
        var trainRatios = new List<double>();
        var forwardRatios = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            // Alternate which layout goes first, so a drift in machine speed within a round favours neither.
            double tn, fn, tc, fc;
            if (r % 2 == 0) { (tn, fn) = Once(depth, channels, size, channelsLast: false); (tc, fc) = Once(depth,
                channels, size, channelsLast: true); }
            else { (tc, fc) = Once(depth, channels, size, channelsLast: true); (tn, fn) = Once(depth, channels, size,
                channelsLast: false); }
            trainRatios.Add(tc / tn);
            forwardRatios.Add(fc / fn);
            Console.WriteLine(
                $"layout {shape} round {r}: train step NCHW {tn:F1} ms, channels-last {tc:F1} ms ({tc / tn:F2}); " +
                              $"frozen forward NCHW {fn:F1} ms, channels-last {fc:F1} ms ({fc / fn:F2})");
            res.Add(new { name = "layout-round", model = shape, round = r, nchw_train_ms = tn,
                channels_last_train_ms = tc, nchw_forward_ms = fn, channels_last_forward_ms = fc });
        }
        double mt = BenchStats.Median(trainRatios), mf = BenchStats.Median(forwardRatios);
        Console.WriteLine(
            $"layout {shape}: channels-last / NCHW, median over {rounds} rounds: train step {mt:F2}, frozen forward " +
            $"{mf:F2}");
        res.Add(new { name = "layout-summary", model = shape, rounds, train_step_ratio_median = mt,
            frozen_forward_ratio_median = mf, ratio_meaning = "channels-last / NCHW time, lower is better" });
        return res;
    }

    static (double TrainMs, double ForwardMs) Once(int depth, int channels, int size, bool channelsLast)
    {
        manual_seed(0);
        using var backbone = new ResNetCifar(depth,
            channels) { Compute = new(Layout: channelsLast ? FeatureLayout.ChannelsLast : FeatureLayout.Nchw) };
        using var head = new LinearHead(64, 10);
        using var opt = optim.SGD(backbone.parameters().Concat(head.parameters()), 0.1, momentum: 0.9,
            weight_decay: 2e-4);
        using var x = randn(128, channels, size, size);
        using var y = randint(0, 10, 128, dtype: int64);
        var train = new List<double>();
        backbone.train(); head.train();
        for (int i = 0; i < 15; i++)
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            opt.zero_grad();
            nn.functional.cross_entropy(head.call(backbone.call(x)), y).backward();
            opt.step();
            if (i >= 3) train.Add(sw.Elapsed.TotalMilliseconds);
        }
        // Stage II's frozen pass: no grad, BatchNorm in train mode (the shift-BN setting).
        var forward = new List<double>();
        using (no_grad())
            for (int i = 0; i < 15; i++)
            {
                using var scope = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                backbone.call(x).sum().item<float>();
                if (i >= 3) forward.Add(sw.Elapsed.TotalMilliseconds);
            }
        return (BenchStats.Median(train), BenchStats.Median(forward));
    }
}
