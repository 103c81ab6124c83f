using System.Diagnostics;
using H2T.Runs;
using H2T.Data;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Training;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>
/// Issue 18's figures: bf16 mixed precision against fp32, and against PyTorch at its best on the same machine.
/// Each round (alternating which side runs first): the isolated ResNet-32 step (ours fp32 and bf16; PyTorch fp32
/// NCHW as the reference writes it, fp32 channels-last, and autocast bf16 + channels-last), then one real epoch of
/// each trainer on CIFAR-10-LT in each precision (stage I with mixup, loader included; stage II with H2T; the
/// 10,000-image evaluation). Ratios are taken within a round; the summary is their median over rounds.
/// </summary>
public static class PrecisionBench
{
    public static object Run(string cifarJpg, int threads, string pythonDir, int rounds, string workDir)
    {
        var splits = DatasetCatalog.Load(new DataConfig("cifar10-jpg", cifarJpg));
        var script = Path.Combine(pythonDir, "resnet32_step.py");
        var perRound = new List<Dictionary<string, double>>();
        for (int r = 0; r < rounds; r++)
        {
            var f = new Dictionary<string, double>();
            bool peerFirst = r % 2 == 1;
            if (peerFirst) Peer(f);
            foreach (var p in new[] { ComputePrecision.Fp32, ComputePrecision.Bf16 })
            {
                var step = ModelBench.ResNet32Step(3, 32, precision: p);
                var name = MixedPrecision.Name(p);
                f[$"ours {name} step ms"] = Get(step, "train_step_median_ms");
                f[$"ours {name} folded eval forward ms"] = Get(step, "folded_eval_forward_median_ms");
            }
            foreach (var p in new[] { ComputePrecision.Fp32, ComputePrecision.Bf16 })
                Trainers(splits, p, Path.Combine(workDir, $"round{r}-{MixedPrecision.Name(p)}"), f);
            if (!peerFirst) Peer(f);
            f["step: ours bf16 / pytorch autocast+channels-last (lower is better)"] =
                f["ours bf16 step ms"] / f["pytorch autocast-bf16 channels-last step ms"];
            f["step: ours bf16 / ours fp32"] = f["ours bf16 step ms"] / f["ours fp32 step ms"];
            f["stage I epoch speed-up bf16 over fp32 (img/s ratio)"] =
                f["ours bf16 stage1 img/s"] / f["ours fp32 stage1 img/s"];
            f["stage II epoch speed-up bf16 over fp32 (img/s ratio)"] =
                f["ours bf16 stage2 img/s"] / f["ours fp32 stage2 img/s"];
            f["evaluation speed-up bf16 over fp32 (time ratio)"] =
                f["ours fp32 evaluation s"] / f["ours bf16 evaluation s"];
            foreach (var (k, v) in f) Console.WriteLine($"round {r}: {k}: {v:G4}");
            perRound.Add(f);
        }
        var summary = perRound[0].Keys.ToDictionary(k => k,
            k => new { median = BenchStats.Median(perRound.Select(p => p[k])),
            rounds = perRound.Select(p => p[k]).ToArray() });
        foreach (var (k, v) in summary) Console.WriteLine($"median over {rounds} rounds: {k}: {v.median:G4}");
        return new { name = "precision-cifar10-lt", threads, rounds, cpu = CpuFeatures.Host.ToString(),
            channels_last = new StageOneConfig().Layout == FeatureLayout.ChannelsLast, summary, per_round = perRound };

        void Peer(Dictionary<string, double> f)
        {
            foreach (var (label, flags) in new[] { ("fp32 NCHW", ""), ("fp32 channels-last", "--channels-last"),
                ("autocast-bf16 channels-last", "--channels-last --autocast") })
            {
                var json = PeerBench.Python(script, $"--threads {threads} {flags}");
                var res = json.GetProperty("results").EnumerateArray().First(x =>
                    x.GetProperty("name").GetString() == "resnet32-step-3x32");
                f[$"pytorch {label} step ms"] = res.GetProperty("train_step_median_ms").GetDouble();
                f[$"pytorch {label} eval forward ms"] = res.GetProperty("eval_forward_median_ms").GetDouble();
            }
        }
    }

    static double Get(object o, string property) => (double)o.GetType().GetProperty(property)!.GetValue(o)!;

    /// <summary>One epoch of each real trainer (as h2t stage1 / stage2 run them), then the timed evaluation.</summary>
    static void Trainers(DatasetSplits splits, ComputePrecision precision, string dir, Dictionary<string, double> f)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var name = MixedPrecision.Name(precision);
        var s1 = new StageOneConfig { Data = new DataConfig("cifar10-jpg"), Backbone = "resnet32", Epochs = 1,
            EvalEvery = 0, Precision = precision };
        var run1 = new RunFolder(Path.Combine(dir, "s1"));
        var m1 = StageOneTrainer.Run(s1, splits, run1, CPU, new SilentObserver());
        var s2 = new StageTwoConfig { Epochs = 1, EvalEvery = 0, Rho = 0.25, Precision = precision };
        var m2 = StageTwoTrainer.Run(run1.LastCheckpoint, s2, splits, new RunFolder(Path.Combine(dir, "s2")), CPU,
            new SilentObserver());
        f[$"ours {name} stage1 img/s"] = m1.Epochs[^1].ImagesPerSecond;
        f[$"ours {name} stage2 img/s"] = m2.Epochs[^1].ImagesPerSecond;
        using var models = Checkpoint.Open(run1.LastCheckpoint, precision: precision);
        using var test = Evaluator.TestLoader(splits, 256, CPU);
        Evaluator.Evaluate(models.Backbone, models.Head, test, splits.NumClasses, splits.Groups); // warm
        var sw = Stopwatch.StartNew();
        Evaluator.Evaluate(models.Backbone, models.Head, test, splits.NumClasses, splits.Groups);
        f[$"ours {name} evaluation s"] = sw.Elapsed.TotalSeconds;
    }
}
