using System.Diagnostics;
using System.Net.Http.Headers;
using H2T.Data;
using H2T.Inference;
using H2T.Runtime;
using H2T.Serving;
using Microsoft.AspNetCore.Builder;

namespace H2T.Bench;

/// <summary>
/// The serving issue's load figures: <c>h2t serve</c>'s host (Kestrel on loopback, the real service) under many
/// concurrent clients posting real CIFAR-10 test JPEGs, with dynamic batching on and off. Bounded in time; reports
/// throughput, p50 / p99 latency, answers by status and the process's resident memory (from /metrics) before and
/// after. The clients run in this process too (HttpClient; their share of the memory is small and the same in both
/// modes).
/// </summary>
public static class ServeBench
{
    public static object Run(string cifarJpg, int threads, int clients, TimeSpan duration, string workDir)
    {
        var root = File.Exists(cifarJpg) ? ImageFolder.ExtractCached(cifarJpg) : cifarJpg;
        var (paths, _, classes) = ImageFolder.Scan(Path.Combine(root, "test"));
        var bodies = paths.Where((_, i) => i % 5 == 0).Take(2000).Select(File.ReadAllBytes).ToArray();
        Directory.CreateDirectory(workDir);
        var ckpt = Path.Combine(workDir, "resnet32.ckpt");
        PredictBench.WriteCheckpoint(ckpt, "resnet32", new ImagePreprocessing(3, 32, 32, 0,
            [.. Normalization.Cifar.Mean], [.. Normalization.Cifar.Std]), classes);
        var modes = new List<object>();
        var figures = new Dictionary<string, double>();
        foreach (var (label, options) in new (string, ServeOptions)[]
        {
            ("batching on (max 32, window 5 ms)", new ServeOptions { MaxBatch = 32,
                BatchWindow = TimeSpan.FromMilliseconds(5), QueueLimit = 1024 }),
            ("batching off (max 1, window 0)", new ServeOptions { MaxBatch = 1, BatchWindow = TimeSpan.Zero,
                QueueLimit = 1024 }),
        })
        {
            var r = Load(ckpt, options, threads, clients, duration, bodies);
            Console.WriteLine(
                $"serve {label}: {r.Throughput:F1} req/s, p50 {r.P50:F1} ms, p99 {r.P99:F1} ms, statuses " +
                $"{string.Join(", ", r.Statuses.Select(kv => $"{kv.Key}: {kv.Value}"))}, " +
                              $"resident {r.ResidentStartMiB:F0} -> [{string.Join(", ", r.ResidentEvery5sMiB)}] -> " +
                                  $"{r.ResidentEndMiB:F0} MiB, mean batch {r.MeanBatch:F1}");
            modes.Add(new { mode = label, requests_per_second = r.Throughput, p50_ms = r.P50, p99_ms = r.P99,
                statuses = r.Statuses, requests = r.Requests,
                resident_start_mib = r.ResidentStartMiB, resident_end_mib = r.ResidentEndMiB,
                    resident_every_5s_mib = r.ResidentEvery5sMiB, mean_batch = r.MeanBatch });
            figures[label] = r.Throughput;
        }
        return new
        {
            name = "serve-load", threads, clients, duration_s = duration.TotalSeconds, images = bodies.Length,
                cpu = CpuFeatures.Host.ToString(),
            model = "resnet32 (CIFAR, 3x32x32), TorchSharp fp32", modes,
            throughput_ratio_on_over_off = figures.Values.First() / figures.Values.Last(),
        };
    }

    sealed record Figures(double Throughput, double P50, double P99, Dictionary<string, int> Statuses, int Requests,
        double ResidentStartMiB, double ResidentEndMiB, double MeanBatch,
        List<double> ResidentEvery5sMiB);

    static Figures Load(string ckpt, ServeOptions options, int threads, int clients, TimeSpan duration, byte[][] bodies)
    {
        var app = ClassifierHost.Build(ckpt, "127.0.0.1", 0, new ClassifierOptions { Threads = threads }, options);
        app.StartAsync().GetAwaiter().GetResult();
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer =
                clients }) { BaseAddress = new Uri(app.Urls.First()) };
            async Task<(int Status, double Ms)> Post(int i)
            {
                using var content = new ByteArrayContent(bodies[i % bodies.Length]);
                content.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
                var sw = Stopwatch.StartNew();
                using var r = await http.PostAsync("/v1/predict", content).ConfigureAwait(false);
                await r.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                return ((int)r.StatusCode, sw.Elapsed.TotalMilliseconds);
            }
            // Warm-up: JIT, the first forward passes, the connection pool.
            Task.WhenAll(Enumerable.Range(0, clients * 2).Select(Post)).GetAwaiter().GetResult();
            double start = Resident(http);
            var results = new System.Collections.Concurrent.ConcurrentBag<(int Status, double Ms)>();
            int counter = 0;
            var clock = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, clients).Select(async _ =>
            {
                while (clock.Elapsed < duration) results.Add(await Post(Interlocked.Increment(
                    ref counter)).ConfigureAwait(false));
            }).ToArray();
            // Resident memory every 5 s while the load runs: flat means it stops growing once the pools are warm.
            var samples = new List<double>();
            while (!Task.WhenAll(workers).Wait(TimeSpan.FromSeconds(5))) samples.Add(Math.Round(Resident(http)));
            Task.WhenAll(workers).GetAwaiter().GetResult();
            double seconds = clock.Elapsed.TotalSeconds;
            double end = Resident(http);
            var metrics = http.GetStringAsync("/metrics").GetAwaiter().GetResult();
            double batches = Value(metrics, "h2t_batch_size_count"), images = Value(metrics, "h2t_batch_size_sum");
            var ok = results.Where(r => r.Status == 200).Select(r => r.Ms).Order().ToArray();
            double Pct(double q) => ok.Length == 0 ? double.NaN : ok[Math.Min(ok.Length - 1, (int)(q * ok.Length))];
            return new Figures(results.Count / seconds, Pct(0.50), Pct(0.99),
                results.GroupBy(r =>
                    r.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToDictionary(g => g.Key,
                    g => g.Count()),
                results.Count, start, end, images / Math.Max(batches, 1), samples);
        }
        finally { app.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    static double Resident(HttpClient http) => Value(http.GetStringAsync("/metrics").GetAwaiter().GetResult(),
        "h2t_resident_memory_bytes") / 1048576.0;

    static double Value(string metrics, string name) => double.Parse(
        metrics.Split('\n').First(l => l.StartsWith(name + " ", StringComparison.Ordinal))[(name.Length + 1)..].Trim(),
            System.Globalization.CultureInfo.InvariantCulture);
}
