namespace H2T.Data;

/// <summary>All images decoded once into one contiguous byte[] (IDX, CIFAR binary): reads are span copies.</summary>
public sealed class InMemoryImageSource : IImageSource
{
    readonly byte[] pixels;
    readonly int[] labels;
    readonly Func<int, string> describe;

    public InMemoryImageSource(byte[] pixels, ImageShape shape, int[] labels, Func<int, string> describe)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if ((long)shape.Size * labels.Length != pixels.LongLength)
            throw new ArgumentException(
                $"{pixels.LongLength} pixel bytes do not hold {labels.Length} images of {shape}");
        this.pixels = pixels;
        this.labels = labels;
        this.describe = describe;
        Shape = shape;
    }

    public int Count => labels.Length;
    public ImageShape Shape { get; }
    public IReadOnlyList<int> Labels => labels;
    /// <summary>The whole decoded set, image after image (CHW each).</summary>
    public ReadOnlyMemory<byte> Pixels => pixels;

    public void ReadInto(int index, Span<byte> chw) =>
        pixels.AsSpan(checked(index * Shape.Size), Shape.Size).CopyTo(chw);

    public string Describe(int index) => describe(index);
}

/// <summary>Decodes a whole source into memory once, when it is small enough.</summary>
public static class DecodedCache
{
    /// <summary>Decoded sets up to this size are held in memory (CIFAR-10-LT as JPEG files: 38 MB train, 31 MB
    /// test).</summary>
    public const long DefaultBudgetBytes = 512L << 20;

    /// <summary>
    /// The source decoded into one byte array (parallel, in index order), or the source itself when its decoded
    /// pixels would exceed <paramref name="budgetBytes"/>. Small image-file sets then pay JPEG decoding once per run
    /// instead of once per epoch, and the loader's background thread stops competing with the training step for
    /// the CPU; large sets (ImageNet-LT) keep decoding lazily in bounded memory. A broken file fails here, at load.
    /// </summary>
    public static IImageSource DecodeIfSmall(IImageSource source, long budgetBytes = DefaultBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source is InMemoryImageSource) return source;
        long bytes = (long)source.Shape.Size * source.Count;
        if (bytes > budgetBytes) return source;
        var pixels = new byte[bytes];
        int size = source.Shape.Size;
        try
        {
            Parallel.For(0, source.Count, i => source.ReadInto(i, pixels.AsSpan(i * size, size)));
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // Report the broken file's own error (it names the file), not the parallel loop's wrapper.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        return new InMemoryImageSource(pixels, source.Shape, [.. source.Labels], source.Describe);
    }
}

/// <summary>A view of some images of another source (a long-tailed subset), in the given order.</summary>
public sealed class SubsetImageSource : IImageSource
{
    readonly IImageSource inner;
    readonly int[] indices;
    readonly int[] labels;

    public SubsetImageSource(IImageSource inner, int[] indices)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(indices);
        this.inner = inner;
        this.indices = indices;
        labels = new int[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            if ((uint)indices[i] >= (uint)inner.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), indices[i],
                    $"index is outside the source (count {inner.Count})");
            labels[i] = inner.Labels[indices[i]];
        }
    }

    public int Count => indices.Length;
    public ImageShape Shape => inner.Shape;
    public IReadOnlyList<int> Labels => labels;
    /// <summary>Index in the underlying source of each image of this view.</summary>
    public IReadOnlyList<int> SourceIndices => indices;
    public void ReadInto(int index, Span<byte> chw) => inner.ReadInto(indices[index], chw);
    public string Describe(int index) => inner.Describe(indices[index]);
}
