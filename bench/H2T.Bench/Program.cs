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

var results = new List<object> { H2T.Bench.ModelBench.ResNet32Step(1, 28), H2T.Bench.ModelBench.ResNet32Step(3, 32) };
File.WriteAllText(outPath, JsonSerializer.Serialize(new { threads = get_num_threads(), results }, new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine($"wrote {outPath}");
return 0;
