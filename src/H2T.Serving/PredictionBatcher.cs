using System.Diagnostics;
using System.Threading.Channels;
using H2T.Data;
using H2T.Inference;

namespace H2T.Serving;

/// <summary>How the service batches, bounds and times out requests.</summary>
public sealed record ServeOptions
{
    /// <summary>Images in one forward pass at most.</summary>
    public int MaxBatch { get; init; } = 32;
    /// <summary>How long the first request of a batch waits for others to join it (0: no batching).</summary>
    public TimeSpan BatchWindow { get; init; } = TimeSpan.FromMilliseconds(5);
    /// <summary>Images waiting at most; beyond it requests get 503 with Retry-After.</summary>
    public int QueueLimit { get; init; } = 256;
    /// <summary>A request not answered within this is answered 504 (its images are dropped if not yet run).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>One image's bytes at most (413 beyond).</summary>
    public long MaxImageBytes { get; init; } = 16L << 20;
    /// <summary>Files in one multipart request at most (413 beyond).</summary>
    public int MaxFilesPerRequest { get; init; } = 64;

    public void Validate()
    {
        if (MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatch), MaxBatch, "max batch must be >= 1");
        if (BatchWindow < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(BatchWindow), BatchWindow,
            "batch window must be >= 0");
        if (QueueLimit < 1) throw new ArgumentOutOfRangeException(nameof(QueueLimit), QueueLimit,
            "queue limit must be >= 1");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RequestTimeout),
            RequestTimeout, "timeout must be > 0");
        if (MaxImageBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxImageBytes), MaxImageBytes,
            "max image bytes must be >= 1");
        if (MaxFilesPerRequest < 1) throw new ArgumentOutOfRangeException(nameof(MaxFilesPerRequest),
            MaxFilesPerRequest, "max files must be >= 1");
    }
}

/// <summary>The queue is at its bound: the caller should answer 503 and ask the client to retry.</summary>
public sealed class QueueFullException(int limit) :
    Exception($"the prediction queue is full ({limit} images waiting); retry shortly")
{
    public int Limit { get; } = limit;
}

/// <summary>The service is shutting down and takes no new work.</summary>
public sealed class ServiceStoppingException() : Exception("the service is shutting down");

/// <summary>
/// Dynamic batching: requests submit decoded images; one worker takes the first waiting request, lets others join
/// for up to <see cref="ServeOptions.BatchWindow"/> or until <see cref="ServeOptions.MaxBatch"/> images, and runs them
/// as one forward pass. The queue is bounded in images; a request that timed out or was abandoned before its turn
/// is dropped, not run. Disposing stops new work, runs what is queued, then returns.
/// </summary>
public sealed class PredictionBatcher : IAsyncDisposable
{
    sealed record Job(byte[][] Images, int TopK, TestTimeEnsemble? TestTime,
        TaskCompletionSource<IReadOnlyList<Prediction>> Done, CancellationToken Cancel);

    readonly ImageClassifier model;
    readonly ServeOptions options;
    readonly Channel<Job> queue = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = true });
    readonly Task worker;
    int waiting;
    volatile bool stopping;

    public PredictionBatcher(ImageClassifier model, ServeOptions options, ServiceMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.model = model;
        this.options = options;
        Metrics = metrics;
        worker = Task.Run(RunAsync);
    }

    public ImageClassifier Model => model;
    public ServeOptions Options => options;
    public ServiceMetrics? Metrics { get; }
    /// <summary>Images waiting for a forward pass.</summary>
    public int QueueDepth => Volatile.Read(ref waiting);
    public bool Stopping => stopping;

    /// <summary>Queues decoded images (each the model's input size) and completes with their predictions, in
    /// order.</summary>
    /// <exception cref="QueueFullException">the queue holds <see cref="ServeOptions.QueueLimit"/> images
    /// already.</exception>
    public Task<IReadOnlyList<Prediction>> SubmitAsync(byte[][] images, int topK, CancellationToken cancel) =>
        SubmitAsync(images, topK, model.TestTime, cancel);

    /// <summary>As <see cref="SubmitAsync(byte[][], int, CancellationToken)"/>, with <paramref name="testTime"/>'s
    /// ensemble (null: one view) instead of the model's default; requests that differ in it share a batch window but
    /// run as separate forward passes.</summary>
    public Task<IReadOnlyList<Prediction>> SubmitAsync(byte[][] images, int topK, TestTimeEnsemble? testTime,
        CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (stopping) throw new ServiceStoppingException();
        if (Interlocked.Add(ref waiting, images.Length) > options.QueueLimit && images.Length > 0)
        {
            Interlocked.Add(ref waiting, -images.Length);
            throw new QueueFullException(options.QueueLimit);
        }
        var job = new Job(images, topK, testTime,
            new TaskCompletionSource<IReadOnlyList<Prediction>>(TaskCreationOptions.RunContinuationsAsynchronously),
            cancel);
        if (!queue.Writer.TryWrite(job))
        {
            Interlocked.Add(ref waiting, -images.Length);
            throw new ServiceStoppingException();
        }
        Metrics?.QueueDepth.Set(QueueDepth);
        return job.Done.Task;
    }

    async Task RunAsync()
    {
        var reader = queue.Reader;
        var batch = new List<Job>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            int images = 0;
            var clock = Stopwatch.StartNew();
            while (images < options.MaxBatch)
            {
                if (reader.TryPeek(out var next))
                {
                    // A request that would overflow the batch waits for the next one (unless the batch is empty).
                    if (images > 0 && images + next.Images.Length > options.MaxBatch) break;
                    reader.TryRead(out _);
                    batch.Add(next);
                    images += next.Images.Length;
                    continue;
                }
                var left = options.BatchWindow - clock.Elapsed;
                if (batch.Count == 0 || left <= TimeSpan.Zero) break;
                using var window = new CancellationTokenSource(left);
                try { if (!await reader.WaitToReadAsync(window.Token).ConfigureAwait(false)) break; }
                catch (OperationCanceledException) { break; }
            }
            Run(batch);
            Interlocked.Add(ref waiting, -images);
            Metrics?.QueueDepth.Set(QueueDepth);
        }
    }

    void Run(List<Job> batch)
    {
        var live = new List<Job>();
        foreach (var job in batch)
        {
            if (job.Cancel.IsCancellationRequested) job.Done.TrySetCanceled(job.Cancel);
            else live.Add(job);
        }
        foreach (var group in live.GroupBy(j => j.TestTime)) Run(group.ToList(), group.Key);
    }

    void Run(List<Job> live, TestTimeEnsemble? testTime)
    {
        int count = live.Sum(j => j.Images.Length);
        if (count == 0) return;
        try
        {
            int size = model.Card.Preprocessing.Shape.Size;
            var pixels = new byte[(long)count * size];
            int at = 0;
            foreach (var image in live.SelectMany(j => j.Images))
            {
                image.CopyTo(pixels.AsSpan(at * size, size));
                at++;
            }
            var logits = model.Logits(pixels, count, testTime);
            Metrics?.BatchSize.Observe(count);
            int k = model.ClassNames.Count, row = 0;
            foreach (var job in live)
            {
                var predictions = new Prediction[job.Images.Length];
                for (int i = 0; i < predictions.Length; i++, row++)
                    predictions[i] = Prediction.FromLogits(logits.AsSpan(row * k, k), model.ClassNames, job.TopK);
                job.Done.TrySetResult(predictions);
            }
        }
        catch (Exception e)
        {
            foreach (var job in live) job.Done.TrySetException(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        stopping = true;
        queue.Writer.TryComplete();
        await worker.ConfigureAwait(false);
    }
}
