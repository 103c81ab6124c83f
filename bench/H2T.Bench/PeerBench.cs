using System.Diagnostics;
using System.Text.Json;
using H2T.Data;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using H2T.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>
/// Issue 7's side-by-side figures on CIFAR-10-LT (shared JPEGs): our stage-I loop, stage-II loop and evaluation pass,
/// then the PyTorch peer (bench/python/loop_peer.py, written the way the reference does it) in the same run, and the
/// ratios. Also the isolated ResNet-32 step against bench/python/resnet32_step.py.
/// </summary>
public static class PeerBench
{
    public static object Run(string cifarJpg, int threads, int batches, string pythonDir)
    {
        var ours = Ours(cifarJpg, batches);
        var step = ModelBench.ResNet32Step(3, 32);
        var peer = Python(Path.Combine(pythonDir, "loop_peer.py"), $"--data {cifarJpg} --threads {threads} --batches {batches}");
        var peerStep = Python(Path.Combine(pythonDir, "resnet32_step.py"), $"--threads {threads}");
        double Get(JsonElement e, string k) => e.GetProperty(k).GetDouble();
        var peerStep3 = peerStep.GetProperty("results").EnumerateArray().First(r => r.GetProperty("name").GetString() == "resnet32-step-3x32");
        double ourStepMs = (double)step.GetType().GetProperty("train_step_median_ms")!.GetValue(step)!;
        var figures = new[]
        {
            Figure("resnet32 train step, batch 128, 3x32x32 (ms)", ourStepMs, Get(peerStep3, "train_step_median_ms"), lowerIsBetter: true, target: "<= 1.0"),
            Figure("stage I loop incl. loading + augmentation (img/s)", ours.Stage1, Get(peer, "stage1_images_per_second"), lowerIsBetter: false, target: ">= 1.2"),
            Figure("stage II loop, two frozen passes + fusion + classifier (img/s)", ours.Stage2, Get(peer, "stage2_images_per_second"), lowerIsBetter: false, target: ">= 1.2"),
            Figure("evaluation of the 10,000 test images (s)", ours.EvalSeconds, Get(peer, "eval_seconds"), lowerIsBetter: true, target: "<= 1.0"),
            Figure("fusion share of the stage-II step", ours.FusionShare, Get(peer, "fusion_share_of_stage2_step"), lowerIsBetter: true, target: "ours < 0.02"),
        };
        foreach (var f in figures) Console.WriteLine($"{f.name}: ours {f.ours:G4}, pytorch {f.pytorch:G4}, ratio {f.ratio:F2} ({f.ratio_meaning}; target {f.target})");
        return new { name = "peer-cifar10-lt", batches, threads, figures, pytorch = peer, ours_data_load_seconds = ours.LoadSeconds };
    }

    sealed record Figures(double Stage1, double Stage2, double EvalSeconds, double FusionShare, double LoadSeconds);

    sealed record PeerFigure(string name, double ours, double pytorch, double ratio, string ratio_meaning, string target);

    static PeerFigure Figure(string name, double ours, double pytorch, bool lowerIsBetter, string target) =>
        new(name, ours, pytorch, ours / pytorch, lowerIsBetter ? "ours / pytorch, lower is better" : "ours / pytorch, higher is better", target);

    static Figures Ours(string cifarJpg, int batches)
    {
        var sw = Stopwatch.StartNew();
        var splits = DatasetCatalog.Load(new DataConfig("cifar10-jpg", cifarJpg));
        double load = sw.Elapsed.TotalSeconds;
        manual_seed(0);
        using var backbone = new ResNetCifar(32, 3);
        using var head = new LinearHead(64, 10);
        using var loss = LossFactory.Create(new LossConfig(), splits.TrainClassCounts);
        double s1;
        using (var opt = optim.SGD(backbone.parameters().Concat(head.parameters()), 0.1, momentum: 0.9, weight_decay: 2e-4))
        using (var loader = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 0), 128, splits.Norm, splits.TrainAugment, 0, dropLast: true))
        {
            var rng = new Random(0);
            using var gen = new Generator(1);
            backbone.train(); head.train();
            s1 = Timed(loader.Epoch(0), batches, b =>
            {
                using var scope = NewDisposeScope();
                var (mixed, ya, yb, lam) = Mixup.Apply(b.Images, b.Labels, 1.0, rng, gen);
                var l = loss.ForwardMixed(head.call(backbone.call(mixed)), ya, yb, lam);
                opt.zero_grad(); l.backward(); opt.step();
                l.item<float>();
                return b.Count;
            });
        }
        foreach (var p in backbone.parameters()) p.requires_grad = false;
        double fusionSeconds = 0, stepSeconds = 0, s2;
        int n = splits.Train.Count;
        using (var opt = optim.SGD(head.parameters(), 0.02, momentum: 0.9, weight_decay: 5e-4))
        using (var paired = new PairedLoader(
                   new BatchLoader(splits.Train, Samplers.ClassBalanced(splits.Train.Labels, 1, n), 128, splits.Norm, splits.TrainAugment, 1, dropLast: true),
                   new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 2), 128, splits.Norm, splits.TrainAugment, 2, dropLast: true)))
        {
            var fusion = new HeadToTailFusion(0.25);
            var rng = new Random(0);
            backbone.train(); head.train();
            s2 = Timed(paired.Epoch(0).Select(p => new PairBatch(p.Tail, p.Head)), batches, pb =>
            {
                using var scope = NewDisposeScope();
                var t0 = Stopwatch.GetTimestamp();
                Tensor fused;
                using (no_grad())
                {
                    var tailMap = backbone.call(pb.Tail.Images);
                    var headMap = backbone.call(pb.Head.Images);
                    var f0 = Stopwatch.GetTimestamp();
                    fused = fusion.Fuse(tailMap, headMap, rng).Fused;
                    fusionSeconds += Stopwatch.GetElapsedTime(f0).TotalSeconds;
                }
                var l = nn.functional.cross_entropy(head.call(fused), pb.Tail.Labels);
                opt.zero_grad(); l.backward(); opt.step();
                l.item<float>();
                stepSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
                return pb.Tail.Count;
            });
        }
        using var testLoader = Evaluator.TestLoader(splits, 256, CPU);
        sw.Restart();
        Evaluator.Evaluate(backbone, head, testLoader, splits.NumClasses, splits.Groups);
        double evalSeconds = sw.Elapsed.TotalSeconds;
        return new Figures(s1, s2, evalSeconds, fusionSeconds / stepSeconds, load);
    }

    sealed class PairBatch(Batch tail, Batch head) : IDisposable
    {
        public Batch Tail { get; } = tail;
        public Batch Head { get; } = head;
        public void Dispose() { Tail.Dispose(); Head.Dispose(); }
    }

    /// <summary>Images per second over <paramref name="batches"/> batches after 3 warm-up batches, loading included.</summary>
    static double Timed<T>(IEnumerable<T> source, int batches, Func<T, int> step) where T : IDisposable
    {
        const int warmup = 3;
        long images = 0;
        var sw = new Stopwatch();
        int i = 0;
        foreach (var item in source)
        {
            using (item)
            {
                if (i == warmup) sw.Start();
                int n = step(item);
                if (i >= warmup) images += n;
            }
            if (++i == warmup + batches) break;
        }
        return images / sw.Elapsed.TotalSeconds;
    }

    static JsonElement Python(string script, string arguments)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3", $"{script} {arguments}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetDirectoryName(script)!,
        };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start /usr/bin/python3");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{script} failed ({p.ExitCode}): {stderr.Result}");
        return JsonDocument.Parse(stdout.Result).RootElement.Clone();
    }
}
