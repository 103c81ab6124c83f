using System.Diagnostics;
using System.Text.Json;
using H2T.Runtime;
using TorchSharp;
using static TorchSharp.torch;

// Benchmarks live apart from the tests: they time, the tests assert. Each run writes JSON next to its console line.
// Usage: dotnet run -c Release --project bench/H2T.Bench -- [--out bench-results.json] [--threads N]
var outPath = "bench-results.json";
int? threads = null;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--out" && i + 1 < args.Length) outPath = args[++i];
    else if (args[i] == "--threads" && i + 1 < args.Length) threads = int.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture);
    else { Console.Error.WriteLine($"unknown argument {args[i]}"); return 2; }
}
TorchRuntime.Initialize(threads);

var results = new List<object> { ConvStep() };
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
