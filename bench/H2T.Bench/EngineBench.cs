using System.Diagnostics;
using H2T.Data;
using H2T.Onnx;
using H2T.Inference;
using H2T.Runs;
using H2T.Runtime;
using H2T.Settings;

namespace H2T.Bench;

/// <summary>
/// Issue 27's inference figures: the model alone (one preprocessed batch, decoding excluded) of ImageNet ResNet-18 and
/// ResNet-50 at 224 px, batch 1 and 32, on TorchSharp fp32 (BatchNorm folded), TorchSharp bf16, ONNX Runtime on the
/// exported file, and what <c>h2t predict --checkpoint</c> runs by default (auto: ONNX Runtime on the export made in
/// memory for these models). Engines interleave within each round, so a drifting machine moves them all.
/// </summary>
public static class EngineBench
{
    public static object Run(int threads, int rounds, string workDir)
    {
        Directory.CreateDirectory(workDir);
        var pre = new ImagePreprocessing(3, 224, 224, 256, [.. Normalization.ImageNet.Mean],
            [.. Normalization.ImageNet.Std]);
        var results = new List<object>();
        foreach (var arch in new[] { "resnet18", "resnet50" })
        {
            var ckpt = Path.Combine(workDir, $"{arch}.ckpt");
            PredictBench.WriteCheckpoint(ckpt, arch, pre, [.. Enumerable.Range(0, 1000).Select(c => $"c{c}")]);
            var onnx = Path.Combine(workDir, $"{arch}.onnx");
            OnnxExporter.Export(ckpt, onnx);
            var engines = new (string Label, string Path, ClassifierOptions Options)[]
            {
                ("torchsharp fp32", ckpt, new() { Precision = ComputePrecision.Fp32,
                    Engine = InferenceEngine.TorchSharp, Threads = threads }),
                ("torchsharp bf16", ckpt, new() { Precision = ComputePrecision.Bf16,
                    Engine = InferenceEngine.TorchSharp, Threads = threads }),
                ("onnxruntime fp32 (exported file)", onnx, new() { Threads = threads }),
                ("h2t predict --checkpoint (auto)", ckpt, new() { Threads = threads }),
            };
            foreach (int batch in new[] { 1, 32 })
            {
                var rng = new Random(0);
                var pixels = new byte[batch * pre.Shape.Size];
                rng.NextBytes(pixels);
                var perRound = new List<Dictionary<string, double>>();
                var engineNames = new Dictionary<string, string>();
                for (int r = 0; r < rounds; r++)
                {
                    var f = new Dictionary<string, double>();
                    foreach (var (label, path, options) in engines)
                    {
                        using var model = ImageClassifier.Load(path, options);
                        engineNames[label] = model.Engine;
                        // warm-up: first-call allocations, primitive creation
                        for (int w = 0; w < 2; w++) model.Logits(pixels, batch);
                        var times = new List<double>();
                        int reps = batch == 1 ? 20 : 3;
                        for (int k = 0; k < reps; k++)
                        {
                            var sw = Stopwatch.StartNew();
                            model.Logits(pixels, batch);
                            times.Add(sw.Elapsed.TotalMilliseconds);
                        }
                        f[$"{label} ms per batch"] = BenchStats.Median(times);
                        f[$"{label} img/s"] = batch / BenchStats.Median(times) * 1000;
                    }
                    f["torchsharp fp32 / onnxruntime (time ratio)"] =
                        f["torchsharp fp32 ms per batch"] / f["onnxruntime fp32 (exported file) ms per batch"];
                    f["predict auto / onnxruntime (time ratio)"] =
                        f["h2t predict --checkpoint (auto) ms per batch"] /
                        f["onnxruntime fp32 (exported file) ms per batch"];
                    foreach (var (k, v) in f) Console.WriteLine($"{arch} batch {batch} round {r}: {k}: {v:G4}");
                    perRound.Add(f);
                }
                var summary = perRound[0].Keys.ToDictionary(k => k,
                    k => new { median = BenchStats.Median(perRound.Select(p => p[k])),
                    rounds = perRound.Select(p => p[k]).ToArray() });
                results.Add(new { architecture = arch, input = "3x224x224", batch, engines = engineNames, summary });
            }
        }
        return new { name = "inference-engines", threads, rounds, cpu = CpuFeatures.Host.ToString(), results };
    }
}
