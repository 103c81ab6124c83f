using System.Diagnostics;
using System.Text.Json;
using H2T.Data;
using H2T.Runtime;
using TorchSharp;
using static TorchSharp.torch;

// Benchmarks live apart from the tests: they time, the tests assert. Each run writes JSON next to its console line.
// Usage: dotnet run -c Release --project bench/H2T.Bench -- [--out bench-results.json] [--threads N]
var outPath = "bench-results.json";
int? threads = null;
var cifarJpg = "/work/shared/data/cifar10-jpg.tar.gz";
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--out" && i + 1 < args.Length) outPath = args[++i];
    else if (args[i] == "--cifar10-jpg" && i + 1 < args.Length) cifarJpg = args[++i];
    else if (args[i] == "--threads" && i + 1 < args.Length) threads = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture);
    else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
}
TorchRuntime.Initialize(threads);

var results = new List<object> { ConvStep() };
results.AddRange(LoaderBench("fashion-mnist", null, maxBatches: 116));
if (File.Exists(cifarJpg) || Directory.Exists(cifarJpg)) results.AddRange(LoaderBench("cifar10-jpg", cifarJpg, maxBatches: 40));
else Console.WriteLine($"cifar10-jpg: {cifarJpg} not found, skipped (--cifar10-jpg PATH)");
File.WriteAllText(outPath, JsonSerializer.Serialize(new { threads = get_num_threads(), results }, new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine($"wrote {outPath}");
return 0;

static object ConvStep()
{
    manual_seed(0);
    using var model = nn.Sequential(("conv", nn.Conv2d(3, 16, 3, padding: 1)), ("relu", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, 10)));
    using var opt = optim.SGD(model.parameters(), 0.1, momentum: 0.9);
    using var x = randn(128, 3, 32, 32);
    using var y = randint(0, 10, 128, dtype: int64);
    var times = new List<double>();
    for (int i = 0; i < 25; i++)
    {
        using var scope = NewDisposeScope();
        var sw = Stopwatch.StartNew();
        opt.zero_grad();
        nn.functional.cross_entropy(model.call(x), y).backward();
        opt.step();
        sw.Stop();
        if (i >= 5) times.Add(sw.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    var median = times[times.Count / 2];
    Console.WriteLine($"conv-step batch 128x3x32x32: median {median:F2} ms");
    return new { name = "conv-step", batch = 128, median_ms = median };
}

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
        Console.WriteLine($"loader {dataset}-LT {mode} batch 128 ({splits.Train.Shape}): mean {mean:F2} ms, median {times[times.Count / 2]:F2} ms per batch over {n} batches (dataset load {loadMs:F0} ms)");
        results.Add(new { name = $"loader-{dataset}-lt-{mode}", batch = 128, batches = n, mean_ms = mean, median_ms = times[times.Count / 2],
            train_images = splits.Train.Count, dataset_load_ms = loadMs });
    }
    return results;
}
