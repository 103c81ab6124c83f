using H2T.Data;

namespace H2T.Inference;

/// <summary>One line of <c>h2t predict</c>'s output: the image, its top-k (null when it failed) or the error.</summary>
public sealed record PredictionRow(PredictionInput Input, Prediction? Prediction, string? Error)
{
    public bool? Correct => Prediction is { } p && Input.Label is { } y ? p.Best.Index == y : null;
}

/// <summary>Totals of a prediction run.</summary>
public sealed record PredictionSummary(int Images, int Failed, int Labelled, int Correct, double Seconds)
{
    public double? Accuracy => Labelled > 0 ? 100.0 * Correct / Labelled : null;
    public double ImagesPerSecond => Seconds > 0 ? (Images - Failed) / Seconds : 0;
}

/// <summary>
/// Streams inputs through a classifier in batches: batch b+1 is decoded (in parallel, one task per image) while batch
/// b runs, so decoding stays off the model's critical path and memory stays at two batches whatever the input count.
/// A file that does not decode becomes a row with an error; the run goes on.
/// </summary>
public static class PredictionJob
{
    public static PredictionSummary Run(ImageClassifier model, IEnumerable<PredictionInput> inputs, int batchSize,
        int topK,
        Action<PredictionRow> sink, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(sink);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize,
            "batch size must be >= 1");
        var plan = model.Card.Preprocessing.Plan;
        int size = plan.Output.Size;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int images = 0, failed = 0, labelled = 0, correct = 0;
        using var batches = inputs.Chunk(batchSize).GetEnumerator();
        Task<Decoded>? Next()
        {
            if (!batches.MoveNext()) return null;
            var chunk = batches.Current; // enumerated here, on this thread; decoded on the pool
            return Task.Run(() => Decode(chunk, plan));
        }
        var next = Next();
        while (next is not null)
        {
            cancel.ThrowIfCancellationRequested();
            var current = next.GetAwaiter().GetResult();
            next = Next();
            var ok = Enumerable.Range(0, current.Items.Length).Where(i => current.Errors[i] is null).ToArray();
            IReadOnlyList<Prediction> predictions = [];
            if (ok.Length > 0)
            {
                var pixels = ok.Length == current.Items.Length ? current.Pixels : Compact(current.Pixels, ok, size);
                predictions = model.FromPixels(pixels, ok.Length, topK);
            }
            int j = 0;
            for (int i = 0; i < current.Items.Length; i++)
            {
                var row = current.Errors[i] is { } error
                    ? new PredictionRow(current.Items[i], null, error)
                    : new PredictionRow(current.Items[i], predictions[j++], null);
                images++;
                if (row.Error is not null) failed++;
                if (row.Correct is { } c) { labelled++; if (c) correct++; }
                sink(row);
            }
        }
        return new PredictionSummary(images, failed, labelled, correct, clock.Elapsed.TotalSeconds);
    }

    sealed record Decoded(PredictionInput[] Items, byte[] Pixels, string?[] Errors);

    static Decoded Decode(PredictionInput[] items, DecodePlan plan)
    {
        var (pixels, errors) = DecodeFiles(items.Length, i => items[i].Path, i => items[i].Display, plan);
        return new Decoded(items, pixels, [.. errors.Select(e => e?.Message)]);
    }

    /// <summary>
    /// Image files decoded in parallel (one task per image) into one N x C x H x W buffer. A file that cannot be read
    /// or decoded leaves zeros and its exception in <c>Errors</c>; anything else (a bug) propagates.
    /// </summary>
    internal static (byte[] Pixels, Exception?[] Errors) DecodeFiles(int count, Func<int, string> path, Func<int,
        string> what, DecodePlan plan)
    {
        int size = plan.Output.Size;
        var pixels = new byte[count * size];
        var errors = new Exception?[count];
        Parallel.For(0, count, i =>
        {
            try { ImageDecoder.Decode(path(i), plan, pixels.AsSpan(i * size, size), what(i)); }
            catch (Exception e) when (e is IOException or DataFormatException or UnauthorizedAccessException)
            {
                errors[i] = e;
            }
        });
        return (pixels, errors);
    }

    static byte[] Compact(byte[] pixels, int[] keep, int size)
    {
        var result = new byte[keep.Length * size];
        for (int k = 0; k < keep.Length; k++) pixels.AsSpan(keep[k] * size, size).CopyTo(result.AsSpan(k * size, size));
        return result;
    }
}
