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
            throw new ArgumentException($"{pixels.LongLength} pixel bytes do not hold {labels.Length} images of {shape}");
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
                throw new ArgumentOutOfRangeException(nameof(indices), indices[i], $"index is outside the source (count {inner.Count})");
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
