using System.Diagnostics;
using Prometheus;

namespace H2T.Serving;

/// <summary>
/// The service's Prometheus metrics, in a registry of its own (two services in one process, as in the tests, do not
/// share counts): requests by route and status, request latency, forward-pass batch sizes, queue depth, and the
/// process's resident and native memory, read at every scrape.
/// </summary>
public sealed class ServiceMetrics
{
    public ServiceMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        Requests = factory.CreateCounter("h2t_requests_total", "HTTP requests answered, by route and status code.",
            new CounterConfiguration { LabelNames = ["route", "status"] });
        Latency = factory.CreateHistogram("h2t_request_duration_seconds",
            "Time from request start to response, /v1/predict.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        BatchSize = factory.CreateHistogram("h2t_batch_size", "Images per forward pass (dynamic batching).",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        QueueDepth = factory.CreateGauge("h2t_queue_depth", "Images waiting for a forward pass.");
        var resident = factory.CreateGauge("h2t_resident_memory_bytes",
            "Resident set size of the process (managed and native).");
        var managed = factory.CreateGauge("h2t_managed_memory_bytes", "Bytes in the .NET heap.");
        Registry.AddBeforeCollectCallback(() =>
        {
            using var self = Process.GetCurrentProcess();
            resident.Set(self.WorkingSet64);
            managed.Set(GC.GetTotalMemory(false));
        });
    }

    public CollectorRegistry Registry { get; }
    public Counter Requests { get; }
    public Histogram Latency { get; }
    public Histogram BatchSize { get; }
    public Gauge QueueDepth { get; }
}
