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
    /// <summary>
    /// <paramref name="rounds"/> rounds, each: our loops and evaluation, our isolated step, one epoch of each real
    /// trainer (StageOneTrainer, StageTwoTrainer with H2T), then the peer's loops and step. Every figure's ratio is
    /// taken within its round; the summary is the median over rounds, since the shared machine's speed drifts by more
    /// than the differences being measured.
    /// </summary>
    public static object Run(string cifarJpg, int threads, int batches, string pythonDir, int rounds, string workDir)
    {
        var splits = DatasetCatalog.Load(new DataConfig("cifar10-jpg", cifarJpg));
        var perRound = new List<PeerFigure[]>();
        var rawPeers = new List<JsonElement>();
        for (int r = 0; r < rounds; r++)
        {
            // Odd rounds run the peer first, so a drift in machine speed within a round does not favour one side.
            bool peerFirst = r % 2 == 1;
            JsonElement peer = default, peerStep = default;
            if (peerFirst) RunPeer();
            var ours = Ours(splits, batches);
            var step = ModelBench.ResNet32Step(3, 32);
            var trainers = RealTrainers(splits, Path.Combine(workDir, $"round{r}"));
            if (!peerFirst) RunPeer();
            void RunPeer()
            {
                peer = Python(Path.Combine(pythonDir, "loop_peer.py"), $"--data {cifarJpg} --threads {threads} --batches {batches}");
                peerStep = Python(Path.Combine(pythonDir, "resnet32_step.py"), $"--threads {threads}");
            }
            rawPeers.Add(peer);
            double Get(JsonElement e, string k) => e.GetProperty(k).GetDouble();
            var peerStep3 = peerStep.GetProperty("results").EnumerateArray().First(x => x.GetProperty("name").GetString() == "resnet32-step-3x32");
            double ourStepMs = (double)step.GetType().GetProperty("train_step_median_ms")!.GetValue(step)!;
            double peerS1 = Get(peer, "stage1_images_per_second"), peerS2 = Get(peer, "stage2_images_per_second");
            var figures = new[]
            {
                Figure("resnet32 train step, batch 128, 3x32x32 (ms)", ourStepMs, Get(peerStep3, "train_step_median_ms"), lowerIsBetter: true, target: "<= 1.0"),
                Figure("stage I loop incl. loading + augmentation (img/s)", ours.Stage1, peerS1, lowerIsBetter: false, target: ">= 1.2"),
                Figure("stage II loop, two frozen passes + fusion + classifier (img/s)", ours.Stage2, peerS2, lowerIsBetter: false, target: ">= 1.2"),
                Figure("evaluation of the 10,000 test images (s)", ours.EvalSeconds, Get(peer, "eval_seconds"), lowerIsBetter: true, target: "<= 1.0"),
                Figure("fusion share of the stage-II step", ours.FusionShare, Get(peer, "fusion_share_of_stage2_step"), lowerIsBetter: true, target: "ours < 0.02"),
                Figure("h2t stage1 trainer, one whole epoch, against the peer's stage I loop (img/s)", trainers.Stage1, peerS1, lowerIsBetter: false, target: ">= 1.2"),
                Figure("h2t stage2 trainer (H2T), one whole epoch, against the peer's stage II loop (img/s)", trainers.Stage2, peerS2, lowerIsBetter: false, target: ">= 1.2"),
            };
            foreach (var f in figures) Console.WriteLine($"round {r}: {f.name}: ours {f.ours:G4}, pytorch {f.pytorch:G4}, ratio {f.ratio:F2} ({f.ratio_meaning}; target {f.target})");
            perRound.Add(figures);
        }
        var summary = perRound[0].Select((f, i) => new
        {
            f.name,
            ratio_median = BenchStats.Median(perRound.Select(p => p[i].ratio)),
            ours_median = BenchStats.Median(perRound.Select(p => p[i].ours)),
            pytorch_median = BenchStats.Median(perRound.Select(p => p[i].pytorch)),
            ratios = perRound.Select(p => p[i].ratio).ToArray(),
            f.ratio_meaning,
            f.target,
        }).ToArray();
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        foreach (var f in summary)
            Console.WriteLine($"median over {rounds} rounds: {f.name}: ratio {f.ratio_median:F2} (rounds: {string.Join(", ", f.ratios.Select(x => x.ToString("F2", ci)))}); " +
                              $"ours {f.ours_median:G4}, pytorch {f.pytorch_median:G4}; target {f.target}");
        return new { name = "peer-cifar10-lt", batches, threads, rounds, channels_last = Runtime.TorchRuntime.ChannelsLast, summary, per_round = perRound, pytorch = rawPeers };
    }


    sealed record TrainerFigures(double Stage1, double Stage2);

    /// <summary>
    /// One epoch of the real trainers on CIFAR-10-LT (ResNet-32, mixup, batch 128; then stage II with H2T at rho
    /// 0.25 and shift-BN), as `h2t stage1` / `h2t stage2` run them: their own loaders, logging, metrics and
    /// checkpoints. The images/s is the one the trainer records for the epoch (training only, not its evaluation),
    /// over the whole epoch from a cold start (loader start-up and first batches included), so it is compared with
    /// the peer's warm 30-batch loop figure: a comparison that, if anything, is unfair to us.
    /// </summary>
    static TrainerFigures RealTrainers(DatasetSplits splits, string dir)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var s1 = new StageOneConfig { Data = new DataConfig("cifar10-jpg"), Backbone = "resnet32", Epochs = 1, EvalEvery = 0 };
        var run1 = new RunFolder(Path.Combine(dir, "s1"));
        var m1 = StageOneTrainer.Run(s1, splits, run1, CPU, new SilentObserver());
        var s2 = new StageTwoConfig { Epochs = 1, EvalEvery = 0, Rho = 0.25 };
        var m2 = StageTwoTrainer.Run(run1.LastCheckpoint, s2, splits, new RunFolder(Path.Combine(dir, "s2")), CPU, new SilentObserver());
        return new TrainerFigures(m1.Epochs[^1].ImagesPerSecond, m2.Epochs[^1].ImagesPerSecond);
    }

    sealed record Figures(double Stage1, double Stage2, double EvalSeconds, double FusionShare);

    sealed record PeerFigure(string name, double ours, double pytorch, double ratio, string ratio_meaning, string target);

    static PeerFigure Figure(string name, double ours, double pytorch, bool lowerIsBetter, string target) =>
        new(name, ours, pytorch, ours / pytorch, lowerIsBetter ? "ours / pytorch, lower is better" : "ours / pytorch, higher is better", target);

    static Figures Ours(DatasetSplits splits, int batches)
    {
        var sw = new Stopwatch();
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
        return new Figures(s1, s2, evalSeconds, fusionSeconds / stepSeconds);
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

    internal static JsonElement Python(string script, string arguments)
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
