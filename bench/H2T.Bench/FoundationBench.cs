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
/// (bench/python/foundation_peer.py: torchvision's models under inference_mode, eager, Linear on oneDNN, TorchScript
/// freezing, autocast and whole-model bf16, channels_last ConvNeXt) and, for inference, ONNX Runtime on our export.
/// Per model: the eval forward at batch 8 and 1 and one full training step (forward, cross-entropy, backward, SGD
/// with momentum, whole model) at batch 8, fp32 and bf16 each; each of ours is set against PyTorch's fastest
/// configuration in the same precision and the best against the best. Each figure is the median of up to 5 timed
/// calls after warm-up, fewer once <c>budget</c> seconds are spent (the slow peer rows).
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
        var rows = new List<object>();
        foreach (var (kind, perItem) in new[] { ("eval batch 8", 8), ("eval batch 1", 1), ("train batch 8", 8) })
        {
            var best = peer.GetProperty("best").GetProperty(kind);
            foreach (var prec in new[] { "fp32", "bf16", "any" })
            {
                var p = best.GetProperty(prec);
                if (p.ValueKind == System.Text.Json.JsonValueKind.Null) continue;
                var peerMs = p.GetProperty("median_ms").GetDouble();
                var o = prec == "any" ? ours.Where(kv => kv.Key.StartsWith(kind, StringComparison.Ordinal))
                    .Min(kv => kv.Value.MedianMs) : ours[$"{kind} {prec}"].MedianMs;
                // An over-budget peer figure is one warm-up call (an upper bound on its time); a skipped one is
                // three forwards (a lower bound): the ratio is then a bound the other way.
                var bound = p.GetProperty("bound").ValueKind == System.Text.Json.JsonValueKind.Null ? null
                    : p.GetProperty("bound").GetString();
                rows.Add(new
                {
                    figure = kind, precision = prec == "any" ? "best of each side" : prec, ours_ms = o,
                    pytorch_config = p.GetProperty("config").GetString(), pytorch_ms = peerMs,
                    pytorch_bound = bound, ratio = o / peerMs,
                });
                Console.WriteLine($"{model} {kind} {prec}: ours {o:F1} ms ({o / perItem:F1} ms per image), pytorch " +
                    $"{peerMs:F1} ms{(bound is null ? "" : $" ({bound} bound)")} " +
                    $"({p.GetProperty("config").GetString()}), ratio {o / peerMs:F2}");
            }
        }
        var ortRows = ort.Select(kv =>
        {
            var kind = kv.Key;
            var peerBest = peer.GetProperty("best").GetProperty(kind).GetProperty("any");
            Console.WriteLine($"{model} {kind} onnxruntime {kv.Value.MedianMs:F1} ms");
            return new
            {
                figure = kind, onnxruntime_ms = kv.Value.MedianMs,
                ours_fp32_over_onnxruntime = ours[$"{kind} fp32"].MedianMs / kv.Value.MedianMs,
                ours_bf16_over_onnxruntime = ours[$"{kind} bf16"].MedianMs / kv.Value.MedianMs,
                onnxruntime_over_pytorch_best = kv.Value.MedianMs / peerBest.GetProperty("median_ms").GetDouble(),
                pytorch_best_config = peerBest.GetProperty("config").GetString(),
            };
        }).ToArray();
        var cpu = CpuFeatures.Host;
        return new
        {
            name = $"foundation-{model}", model, input = "3x224x224", threads, classes = Classes, budget_s = budget,
            // As the other modes write it, then its parts: /proc/cpuinfo's model name is lscpu's "Model name".
            cpu = cpu.ToString(), cpu_model_name = cpu.Model, cpu_family = cpu.Family, cpu_model = cpu.ModelNumber,
            avx512_bf16 = cpu.Avx512Bf16, amx_bf16 = cpu.AmxBf16, cores = Environment.ProcessorCount,
            versions = new
            {
                torchsharp = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(),
                // The libtorch-cpu package TorchSharp-cpu 0.107.0 depends on (Directory.Packages.props comment).
                libtorch = "2.10.0", onnxruntime = ortEngine,
                pytorch = peer.GetProperty("torch").GetString(),
                torchvision = peer.GetProperty("torchvision").GetString(),
                pytorch_blas = peer.GetProperty("blas").GetString(),
            },
            ratio_meaning = "ours / peer time, below 1 means we are faster; per precision against PyTorch's fastest " +
                "configuration in that precision, and best of each side",
            rows, onnxruntime_rows = ortRows, onnxruntime_skipped = ortSkipped, ours, onnxruntime = ort,
            pytorch = peer,
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
