using System.Diagnostics;
using System.Text.Json;
using H2T.Data;
using H2T.Runtime;
using H2T.Settings;
using static TorchSharp.torch;

// Benchmarks live apart from the tests: they time, the tests assert. Each run writes JSON next to its console line.
// Usage: dotnet run -c Release --project bench/H2T.Bench -- [--out bench-results.json] [--threads N]
var outPath = "bench-results.json";
int? threads = null;
string? only = null;
int scalingImages = 10000;
int rounds = 3;
int clients = 32;
double seconds = 20;
string model = "convnext_tiny";
double budget = 20;
string scalingRoot = Path.Combine(Path.GetTempPath(), "h2t-scaling");
var cifarJpg = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
    "../../../../../../../shared/data/cifar10-jpg.tar.gz"));
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--out" && i + 1 < args.Length) outPath = args[++i];
    else if (args[i] == "--cifar10-jpg" && i + 1 < args.Length) cifarJpg = args[++i];
    else if (args[i] == "--only" && i + 1 < args.Length) only = args[++i];
    else if (args[i] == "--images" && i + 1 < args.Length) scalingImages = int.Parse(args[++i],
        System.Globalization.CultureInfo.InvariantCulture);
    else if (args[i] == "--rounds" && i + 1 < args.Length) rounds = int.Parse(args[++i],
        System.Globalization.CultureInfo.InvariantCulture);
    else if (args[i] == "--scaling-root" && i + 1 < args.Length) scalingRoot = args[++i];
    else if (args[i] == "--clients" && i + 1 < args.Length) clients = int.Parse(args[++i],
        System.Globalization.CultureInfo.InvariantCulture);
    else if (args[i] == "--seconds" && i + 1 < args.Length) seconds = double.Parse(args[++i],
        System.Globalization.CultureInfo.InvariantCulture);
    else if (args[i] == "--model" && i + 1 < args.Length) model = args[++i];
    else if (args[i] == "--budget" && i + 1 < args.Length) budget = double.Parse(args[++i],
        System.Globalization.CultureInfo.InvariantCulture);
    else if (args[i] == "--threads" && i + 1 < args.Length) threads = int.Parse(args[++i],
        System.Globalization.CultureInfo.InvariantCulture);
    else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
}
TorchRuntime.Initialize(threads);

// --only model|loader|loop|peer runs one group.
var results = new List<object>();
if (only is null or "model") { results.Add(H2T.Bench.ModelBench.ResNet32Step(1,
    28)); results.Add(H2T.Bench.ModelBench.ResNet32Step(3, 32)); }
if (only is null or "loader")
{
    results.AddRange(LoaderBench("fashion-mnist", null, maxBatches: 116));
    if (File.Exists(cifarJpg) || Directory.Exists(cifarJpg)) results.AddRange(LoaderBench("cifar10-jpg", cifarJpg,
        maxBatches: 40));
    else Console.WriteLine($"cifar10-jpg: {cifarJpg} not found, skipped (--cifar10-jpg PATH)");
}
if (only is null or "loop") results.AddRange(H2T.Bench.LoopBench.Run());
// --only layout: NCHW against channels-last feature maps, interleaved rounds (--rounds N).
if (only == "layout") results.AddRange(H2T.Bench.LayoutBench.Run(rounds));
// --only scaling [--images N] [--scaling-root DIR]: a generated 1,000-class list-file set streamed once; one size per
// process so the peak memory belongs to that size (not in "all").
if (only == "scaling") results.Add(H2T.Bench.ScalingBench.Run(scalingImages, Path.Combine(scalingRoot,
    scalingImages.ToString(System.Globalization.CultureInfo.InvariantCulture))));
// --only precision: bf16 against fp32 and against PyTorch's autocast + channels-last (needs python3-torch and the
// shared CIFAR-10 JPEGs); not in "all".
if (only == "precision")
{
    var pythonDir = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../python"));
    results.Add(H2T.Bench.PrecisionBench.Run(cifarJpg, threads ?? Environment.ProcessorCount, pythonDir, rounds,
        Path.Combine(Path.GetTempPath(), "h2t-precision-runs")));
}
// --only predict: h2t predict's throughput, TorchSharp against ONNX Runtime, beside h2t eval's path (needs the
// shared CIFAR-10 JPEGs); not in "all".
if (only == "predict")
    results.Add(H2T.Bench.PredictBench.Run(cifarJpg, threads ?? Environment.ProcessorCount, rounds,
        Path.Combine(Path.GetTempPath(), "h2t-predict-bench")));
// --only engines: the model alone on TorchSharp fp32 / bf16 and ONNX Runtime, ImageNet ResNet-18/50 at 224 px, batch 1
// and
// 32, and what predict --checkpoint picks by default; not in "all".
if (only == "engines") results.Add(H2T.Bench.EngineBench.Run(threads ?? Environment.ProcessorCount, rounds,
    Path.Combine(Path.GetTempPath(), "h2t-engine-bench")));
// --only serve [--clients N] [--seconds S]: h2t serve's host under concurrent clients, batching on and off (needs the
// shared CIFAR-10 JPEGs); not in "all".
if (only == "serve")
    results.Add(H2T.Bench.ServeBench.Run(cifarJpg, threads ?? Environment.ProcessorCount, clients,
        TimeSpan.FromSeconds(seconds), Path.Combine(Path.GetTempPath(), "h2t-serve-bench")));
// --only foundation [--model vit_b_16|convnext_tiny] [--budget S]: a foundation backbone at 224 px, ours fp32 / bf16
// against the PyTorch peer at its best and ONNX Runtime (needs python3-torch); not in "all".
if (only == "foundation")
{
    var pythonDir = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../python"));
    results.Add(H2T.Bench.FoundationBench.Run(model, threads ?? Environment.ProcessorCount, pythonDir,
        Path.Combine(Path.GetTempPath(), "h2t-foundation-bench"), budget));
}
// --only peer: side by side with the PyTorch peer (needs python3-torch and the shared CIFAR-10 JPEGs); not in "all".
if (only == "peer")
{
    var pythonDir = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../python"));
    results.Add(H2T.Bench.PeerBench.Run(cifarJpg, threads ?? Environment.ProcessorCount, 30, pythonDir, rounds,
        Path.Combine(Path.GetTempPath(), "h2t-peer-runs")));
}
File.WriteAllText(outPath, JsonSerializer.Serialize(new { threads = get_num_threads(), results },
    new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine($"wrote {outPath}");
return 0;

// The data loader alone (no model): batch 128, long-tailed train split, instance sampling, the dataset's training
// augmentation. "sequential" is the assembly cost of one batch on the calling thread; "prefetched" is what a consumer
// that does no work waits per batch, i.e. the loader's throughput with its background prefetch.
static IEnumerable<object> LoaderBench(string dataset, string? path, int maxBatches)
{
    var sw = Stopwatch.StartNew();
    var splits = DatasetCatalog.Load(new DataConfig(dataset, path));
    var loadMs = sw.Elapsed.TotalMilliseconds;
    var results = new List<object>();
    foreach (var prefetch in new[] { 0, 2 })
    {
        using var loader = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 0), 128, splits.Norm,
            splits.TrainAugment, seed: 0, dropLast: true, prefetch: prefetch);
        int n = Math.Min(maxBatches, loader.BatchesPerEpoch);
        // Warm-up: tiered JIT needs a few dozen calls, plus the thread pool and the file cache.
        foreach (var b in loader.Epoch(99).Take(15)) b.Dispose();
        var times = new List<double>();
        sw.Restart();
        var last = sw.Elapsed.TotalMilliseconds;
        foreach (var b in loader.Epoch(0).Take(n))
        {
            b.Dispose();
            var now = sw.Elapsed.TotalMilliseconds;
            times.Add(now - last);
            last = now;
        }
        var total = sw.Elapsed.TotalMilliseconds;
        times.Sort();
        var mode = prefetch == 0 ? "sequential" : "prefetched";
        var mean = total / n;
        Console.WriteLine(
            $"loader {dataset}-LT {mode} batch 128 ({splits.Train.Shape}): mean {mean:F2} ms, median " +
            $"{times[times.Count / 2]:F2} ms per batch over {n} batches (dataset load {loadMs:F0} ms)");
        results.Add(new { name = $"loader-{dataset}-lt-{mode}", batch = 128, batches = n, mean_ms = mean,
            median_ms = times[times.Count / 2],
            train_images = splits.Train.Count, dataset_load_ms = loadMs });
    }
    return results;
}
