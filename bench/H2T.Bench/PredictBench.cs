using System.Diagnostics;
using H2T.Runs;
using H2T.Data;
using H2T.Onnx;
using H2T.Inference;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Training;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>
/// Issue 17's figures: prediction throughput of the two engines on the same machine, over real CIFAR-10 test JPEGs.
/// Per architecture (ResNet-32 at 32 px; ResNet-50 at 224 px, resize 256 + center crop) and round: <c>h2t eval</c>'s
/// path (data loader + BatchNorm-folded forward), <c>h2t predict --checkpoint</c> (TorchSharp, fp32 and bf16) and
/// <c>h2t predict --onnx</c> (ONNX Runtime) through <see cref="PredictionJob"/> with decoding included, and the model
/// alone on one preprocessed batch. Same batch size and thread count everywhere; medians over rounds.
/// </summary>
public static class PredictBench
{
    public static object Run(string cifarJpg, int threads, int rounds, string workDir)
    {
        var root = File.Exists(cifarJpg) ? ImageFolder.ExtractCached(cifarJpg) : cifarJpg;
        var (allPaths, allLabels, classes) = ImageFolder.Scan(Path.Combine(root, "test"));
        Directory.CreateDirectory(workDir);
        var archs = new List<object>();
        foreach (var (arch, pre, images) in new[]
        {
            ("resnet32", new ImagePreprocessing(3, 32, 32, 0, [.. Normalization.Cifar.Mean],
                [.. Normalization.Cifar.Std]), 2000),
            ("resnet50", new ImagePreprocessing(3, 224, 224, 256, [.. Normalization.ImageNet.Mean],
                [.. Normalization.ImageNet.Std]), 128),
        })
        {
            // Every 5th test image, so all classes are in.
            var pick = Enumerable.Range(0, allPaths.Length).Where(i => i % 5 == 0).Take(images).ToArray();
            var paths = pick.Select(i => allPaths[i]).ToArray();
            var labels = pick.Select(i => allLabels[i]).ToArray();
            var ckpt = Path.Combine(workDir, $"{arch}.ckpt");
            WriteCheckpoint(ckpt, arch, pre, classes);
            var onnx = Path.Combine(workDir, $"{arch}.onnx");
            OnnxExporter.Export(ckpt, onnx);
            int batch = Math.Min(128, images);
            var perRound = new List<Dictionary<string, double>>();
            for (int r = 0; r < rounds; r++)
            {
                var f = new Dictionary<string, double>();
                f["eval path (loader + folded forward) fp32 img/s"] = EvalPath(ckpt, paths, labels, pre, batch,
                    ComputePrecision.Fp32);
                foreach (var (label, path, precision) in new (string, string, ComputePrecision?)[]
                {
                    ("predict torchsharp fp32", ckpt, ComputePrecision.Fp32), ("predict torchsharp bf16", ckpt,
                        ComputePrecision.Bf16), ("predict onnxruntime fp32", onnx, null),
                })
                {
                    using var model = ImageClassifier.Load(path, new ClassifierOptions { Precision = precision,
                        Threads = threads });
                    var inputs = paths.Select((p, i) => new PredictionInput(p, p, labels[i])).ToArray();
                    PredictionJob.Run(model, inputs.Take(batch), batch, 5, _ => { }); // warm-up
                    var s = PredictionJob.Run(model, inputs, batch, 5, _ => { });
                    f[$"{label} img/s"] = s.ImagesPerSecond;
                    var pixels = new byte[batch * pre.Shape.Size];
                    for (int i = 0; i < batch; i++) ImageDecoder.Decode(paths[i % paths.Length], pre.Plan,
                        pixels.AsSpan(i * pre.Shape.Size, pre.Shape.Size));
                    model.Logits(pixels, batch);
                    var times = new List<double>();
                    for (int k = 0; k < 3; k++)
                    {
                        var sw = Stopwatch.StartNew();
                        model.Logits(pixels, batch);
                        times.Add(sw.Elapsed.TotalSeconds);
                    }
                    f[$"{label} model only img/s"] = batch / BenchStats.Median(times);
                }
                f["predict: onnxruntime / torchsharp fp32 (img/s ratio)"] =
                    f["predict onnxruntime fp32 img/s"] / f["predict torchsharp fp32 img/s"];
                f["model only: onnxruntime / torchsharp fp32 (img/s ratio)"] =
                    f["predict onnxruntime fp32 model only img/s"] / f["predict torchsharp fp32 model only img/s"];
                foreach (var (k, v) in f) Console.WriteLine($"{arch} round {r}: {k}: {v:G4}");
                perRound.Add(f);
            }
            var summary = perRound[0].Keys.ToDictionary(k => k,
                k => new { median = BenchStats.Median(perRound.Select(p => p[k])),
                rounds = perRound.Select(p => p[k]).ToArray() });
            archs.Add(new { architecture = arch, input = pre.Describe(), images = paths.Length, batch, summary });
        }
        return new { name = "predict-throughput", threads, rounds, cpu = CpuFeatures.Host.ToString(),
            onnxruntime = OnnxVersion(), results = archs };
    }

    static string OnnxVersion() => Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString();

    internal static void WriteCheckpoint(string path, string arch, ImagePreprocessing pre, string[] classes)
    {
        manual_seed(0);
        using var backbone = ModelFactory.CreateBackbone(arch, 3);
        using var head = ModelFactory.CreateHead("linear", backbone, classes.Length);
        Checkpoint.Save(path, new CheckpointMeta
        {
            Architecture = arch, InChannels = 3, NumClasses = classes.Length, ClassNames = classes, Preprocessing = pre,
            ClassCounts = [.. classes.Select(_ => 1)], Dataset = "cifar10-jpg",
        }, backbone, head, null);
    }

    /// <summary>What <c>h2t eval</c> does per image: the data loader (decoding on its threads, prefetch 2) and the
    /// folded forward.</summary>
    static double EvalPath(string ckpt, string[] paths, int[] labels, ImagePreprocessing pre, int batch,
        ComputePrecision precision)
    {
        using var models = Checkpoint.Open(ckpt, precision: precision);
        var source = new FileImageSource(paths, labels, pre.Plan);
        var splits = new DatasetSplits
        {
            Name = "bench", Train = source, Test = source, ClassNames = [.. Enumerable.Range(0,
                10).Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture))], Norm = pre.Norm,
            TrainClassCounts = [.. Enumerable.Repeat(1, 10)], Groups = ClassGroups.Default([.. Enumerable.Repeat(1,
                10)]), TrainAugment = AugmentConfig.None,
        };
        using (var warm = Evaluator.TestLoader(splits with { Test = new FileImageSource(paths[..batch], labels[..batch],
            pre.Plan) }, batch, CPU))
            Evaluator.Evaluate(models.Backbone, models.Head, warm, 10, splits.Groups);
        using var loader = Evaluator.TestLoader(splits, batch, CPU);
        var sw = Stopwatch.StartNew();
        Evaluator.Evaluate(models.Backbone, models.Head, loader, 10, splits.Groups);
        return paths.Length / sw.Elapsed.TotalSeconds;
    }
}
