using System.Diagnostics;
using System.Text.Json;
using H2T.Runs;
using H2T.Data;
using H2T.Fusion;
using H2T.Settings;
using H2T.Training;
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
            var ours = Ours(splits, Path.Combine(workDir, $"round{r}"));
            var step = ModelBench.ResNet32Step(3, 32);
            if (!peerFirst) RunPeer();
            void RunPeer()
            {
                peer = Python(Path.Combine(pythonDir, "loop_peer.py"),
                    $"--data {cifarJpg} --threads {threads} --batches {batches}");
                peerStep = Python(Path.Combine(pythonDir, "resnet32_step.py"), $"--threads {threads}");
            }
            rawPeers.Add(peer);
            double Get(JsonElement e, string k) => e.GetProperty(k).GetDouble();
            var peerStep3 = peerStep.GetProperty("results").EnumerateArray().First(x =>
                x.GetProperty("name").GetString() == "resnet32-step-3x32");
            double ourStepMs = (double)step.GetType().GetProperty("train_step_median_ms")!.GetValue(step)!;
            double peerS1 = Get(peer, "stage1_images_per_second"), peerS2 = Get(peer, "stage2_images_per_second");
            var figures = new[]
            {
                Figure("resnet32 train step, batch 128, 3x32x32 (ms)", ourStepMs, Get(peerStep3,
                    "train_step_median_ms"), lowerIsBetter: true, target: "<= 1.0"),
                Figure("stage I: h2t's stage1 trainer, one whole epoch incl. loading + augmentation, against the " +
                    "peer's loop (img/s)", ours.StageOne, peerS1, lowerIsBetter: false, target: ">= 1.2"),
                Figure("stage II: h2t's stage2 trainer (H2T rho 0.25), one whole epoch, against the peer's loop " +
                    "(img/s)", ours.StageTwo, peerS2, lowerIsBetter: false, target: ">= 1.2"),
                Figure("evaluation of the 10,000 test images (s)", ours.EvalSeconds, Get(peer, "eval_seconds"),
                    lowerIsBetter: true, target: "<= 1.0"),
                Figure("fusion share of the stage-II step", ours.FusionShare, Get(peer, "fusion_share_of_stage2_step"),
                    lowerIsBetter: true, target: "ours < 0.02"),
            };
            foreach (var f in figures) Console.WriteLine(
                $"round {r}: {f.name}: ours {f.ours:G4}, pytorch {f.pytorch:G4}, ratio {f.ratio:F2} " +
                $"({f.ratio_meaning}; target {f.target})");
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
            Console.WriteLine(
                $"median over {rounds} rounds: {f.name}: ratio {f.ratio_median:F2} (rounds: " +
                $"{string.Join(", ", f.ratios.Select(x => x.ToString("F2", ci)))}); " +
                              $"ours {f.ours_median:G4}, pytorch {f.pytorch_median:G4}; target {f.target}");
        return new { name = "peer-cifar10-lt", batches, threads, rounds,
            channels_last = new StageOneConfig().Layout == FeatureLayout.ChannelsLast, summary, per_round = perRound,
            pytorch = rawPeers };
    }


    sealed record Figures(double StageOne, double StageTwo, double EvalSeconds, double FusionShare);

    sealed record PeerFigure(string name, double ours, double pytorch, double ratio, string ratio_meaning,
        string target);

    static PeerFigure Figure(string name, double ours, double pytorch, bool lowerIsBetter, string target) =>
        new(name, ours, pytorch, ours / pytorch,
            lowerIsBetter ? "ours / pytorch, lower is better" : "ours / pytorch, higher is better", target);

    /// <summary>
    /// Our side, all through the library's own code: one epoch of each real trainer (StageOneTrainer with mixup,
    /// StageTwoTrainer with H2T at rho 0.25; loading included, no evaluation), the 10,000-image evaluation of the
    /// stage-I checkpoint by the Evaluator <c>h2t eval</c> uses, and the fusion op's share of a stage-II batch (the
    /// op timed alone on the backbone's real maps, against the trainer's time per batch).
    /// </summary>
    static Figures Ours(DatasetSplits splits, string dir)
    {
        var (s1, s2) = LoopBench.Epochs(splits, dir);
        using var models = Checkpoint.Open(Path.Combine(dir, "s1", "last.ckpt"));
        using var testLoader = Evaluator.TestLoader(splits, 256, CPU);
        var sw = Stopwatch.StartNew();
        Evaluator.Evaluate(models.Backbone, models.Head, testLoader, splits.NumClasses, splits.Groups);
        double evalSeconds = sw.Elapsed.TotalSeconds;

        using var tails = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 0), 128, splits.Norm,
            null, 0, dropLast: true);
        using var heads = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 1), 128, splits.Norm,
            null, 1, dropLast: true);
        var fusion = new HeadToTailFusion(0.25);
        var rng = new Random(0);
        var times = new List<double>();
        using (no_grad())
            foreach (var (t, h) in tails.Epoch(0).Zip(heads.Epoch(0)).Take(20))
            {
                using var tb = t;
                using var hb = h;
                using var scope = NewDisposeScope();
                var tail = models.Backbone.call(tb.Images);
                var head = models.Backbone.call(hb.Images);
                var f0 = Stopwatch.GetTimestamp();
                fusion.Fuse(tail, head, rng).Fused.sum().item<float>();
                times.Add(Stopwatch.GetElapsedTime(f0).TotalSeconds);
            }
        double perBatch = 128 / s2;
        return new Figures(s1, s2, evalSeconds, BenchStats.Median(times.Skip(3)) / perBatch);
    }

    internal static JsonElement Python(string script, string arguments)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3", $"{script} {arguments}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(script)!,
        };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start /usr/bin/python3");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{script} failed ({p.ExitCode}): {stderr.Result}");
        return JsonDocument.Parse(stdout.Result).RootElement.Clone();
    }
}
