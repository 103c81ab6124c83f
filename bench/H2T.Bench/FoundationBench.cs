using System.Diagnostics;
using H2T.Data;
using H2T.Inference;
using H2T.Models;
using H2T.Onnx;
using H2T.Runtime;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Bench;

/// <summary>
/// The foundation backbones (ViT-B/16, ConvNeXt-T) at 224 px against PyTorch 1.13 at its best on this CPU
/// (bench/python/foundation_peer.py: torchvision's models, inference_mode, channels_last ConvNeXt, autocast bf16,
/// TorchScript freezing) and, for inference, ONNX Runtime on our export. Per model: the eval forward at batch 8 and 1
/// and one full training step (forward, cross-entropy, backward, SGD) at batch 8, fp32 and bf16 each. Each figure is
/// the median of up to 5 timed calls after warm-up, fewer once <c>budget</c> seconds are spent (the slow peer rows).
/// </summary>
public static class FoundationBench
{
    const int Classes = 1000;

    public static object Run(string model, int threads, string pythonDir, string workDir, double budget)
    {
        Directory.CreateDirectory(workDir);
        var ours = new Dictionary<string, Timing>();
        foreach (var p in new[] { ComputePrecision.Fp32, ComputePrecision.Bf16 })
            Ours(model, p, budget, ours);
        var ort = Ort(model, threads, workDir, budget, out var ortEngine, out var ortSkipped);
        var peer = PeerBench.Python(Path.Combine(pythonDir, "foundation_peer.py"),
            FormattableString.Invariant($"--model {model} --threads {threads} --budget {budget}"));
        var best = peer.GetProperty("best");
        double PeerBest(string k) => best.GetProperty(k).GetProperty("median_ms").GetDouble();
        string PeerConfig(string k) => best.GetProperty(k).GetProperty("config").GetString()!;
        double OurBest(string kind) => ours.Where(kv => kv.Key.StartsWith(kind, StringComparison.Ordinal))
            .Min(kv => kv.Value.MedianMs);
        var ratios = new Dictionary<string, object>();
        foreach (var (kind, peerKey, perItem) in new[] { ("eval batch 8", "eval batch 8", 8),
            ("eval batch 1", "eval batch 1", 1), ("train batch 8", "train batch 8", 8) })
            foreach (var prec in new[] { "fp32", "bf16" })
            {
                var o = ours[$"{kind} {prec}"].MedianMs;
                ratios[$"{kind}: ours {prec} / pytorch best ({PeerConfig(peerKey)})"] = o / PeerBest(peerKey);
                Console.WriteLine($"{model} {kind} ours {prec} {o:F1} ms ({o / perItem:F1} ms per image), pytorch " +
                    $"best {PeerBest(peerKey):F1} ms ({PeerConfig(peerKey)}), ratio {o / PeerBest(peerKey):F2}");
            }
        foreach (var kind in new[] { "eval batch 8", "eval batch 1", "train batch 8" })
            ratios[$"{kind}: our best / pytorch best"] = OurBest(kind) / PeerBest(kind);
        foreach (var (k, t) in ort)
        {
            var batch = k.EndsWith('8') ? "eval batch 8" : "eval batch 1";
            ratios[$"{batch}: ours fp32 / onnxruntime"] = ours[$"{batch} fp32"].MedianMs / t.MedianMs;
            ratios[$"{batch}: ours bf16 / onnxruntime"] = ours[$"{batch} bf16"].MedianMs / t.MedianMs;
            ratios[$"{batch}: onnxruntime / pytorch best"] = t.MedianMs / PeerBest(batch);
            Console.WriteLine($"{model} {batch} onnxruntime {t.MedianMs:F1} ms");
        }
        return new
        {
            name = $"foundation-{model}", model, input = "3x224x224", threads, classes = Classes, budget_s = budget,
            cpu = CpuFeatures.Host,
            versions = new
            {
                torchsharp = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(),
                // The libtorch-cpu package TorchSharp-cpu 0.107.0 depends on (Directory.Packages.props comment).
                libtorch = "2.10.0", onnxruntime = ortEngine,
                pytorch = peer.GetProperty("torch").GetString(),
                torchvision = peer.GetProperty("torchvision").GetString(),
            },
            ratio_meaning = "ours / peer time, below 1 means we are faster",
            ours, onnxruntime = ort, onnxruntime_skipped = ortSkipped, ratios, pytorch = peer,
        };
    }

    /// <summary>A figure: the median and the calls behind it.</summary>
    public sealed record Timing(double MedianMs, int Runs, double[] TimesMs);

    static Timing Time(Action call, int warmup, double budget)
    {
        for (int i = 0; i < warmup; i++) call();
        var times = new List<double>();
        var start = Stopwatch.StartNew();
        while (times.Count < 5 && (times.Count == 0 || start.Elapsed.TotalSeconds < budget))
        {
            var sw = Stopwatch.StartNew();
            call();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        return new(BenchStats.Median(times), times.Count, [.. times]);
    }

    /// <summary>Our side through the library's own backbone and head, as the trainers and TorchModelRunner run
    /// them: eval forward under no_grad (BatchNorm-folded form where there is one), then SGD steps.</summary>
    static void Ours(string model, ComputePrecision precision, double budget, Dictionary<string, Timing> f)
    {
        manual_seed(0);
        var name = MixedPrecision.Name(precision);
        using var backbone = ModelFactory.CreateBackbone(model, 3, new BackboneCompute(precision));
        using var head = ModelFactory.CreateHead("linear", backbone, Classes);
        backbone.eval(); head.eval();
        using (no_grad())
        {
            using var folded = backbone.FoldedForInference();
            var net = folded ?? backbone;
            foreach (int batch in new[] { 8, 1 })
            {
                using var x = randn(batch, 3, 224, 224);
                f[$"eval batch {batch} {name}"] = Time(() =>
                {
                    using var scope = NewDisposeScope();
                    head.call(net.call(x)).sum().item<float>();
                }, 2, budget);
                Console.WriteLine($"{model} ours eval batch {batch} {name}: {f[$"eval batch {batch} {name}"]}");
            }
        }
        backbone.train(); head.train();
        using var opt = optim.SGD(backbone.parameters().Concat(head.parameters()), 0.01, momentum: 0.9,
            weight_decay: 5e-5);
        using var xt = randn(8, 3, 224, 224);
        using var y = randint(0, Classes, 8, dtype: int64);
        f[$"train batch 8 {name}"] = Time(() =>
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            nn.functional.cross_entropy(head.call(backbone.call(xt)).to(float32), y).backward();
            opt.step();
        }, 1, budget);
        Console.WriteLine($"{model} ours train batch 8 {name}: {f[$"train batch 8 {name}"]}");
    }

    /// <summary>ONNX Runtime on our export (graph optimisation all, <paramref name="threads"/> intra-op threads, as
    /// OnnxModelRunner opens every session), fed bytes as <c>h2t predict</c> feeds it.</summary>
    static Dictionary<string, Timing> Ort(string model, int threads, string workDir, double budget, out string engine,
        out string? skipped)
    {
        var result = new Dictionary<string, Timing>();
        engine = "";
        skipped = null;
        var pre = new ImagePreprocessing(3, 224, 224, 256, [.. Normalization.ImageNet.Mean],
            [.. Normalization.ImageNet.Std]);
        var ckpt = Path.Combine(workDir, $"{model}.ckpt");
        var onnx = Path.Combine(workDir, $"{model}.onnx");
        PredictBench.WriteCheckpoint(ckpt, model, pre, [.. Enumerable.Range(0, Classes).Select(c => $"c{c}")]);
        try { OnnxExporter.Export(ckpt, onnx); }
        catch (NotSupportedException e)
        {
            skipped = e.Message;
            Console.WriteLine($"{model}: onnxruntime skipped: {e.Message}");
            return result;
        }
        using var classifier = ImageClassifier.Load(onnx, new ClassifierOptions { Threads = threads });
        engine = classifier.Engine;
        foreach (int batch in new[] { 8, 1 })
        {
            var pixels = new byte[batch * pre.Shape.Size];
            new Random(0).NextBytes(pixels);
            result[$"eval batch {batch}"] = Time(() => classifier.Logits(pixels, batch), 2, budget);
        }
        return result;
    }
}
