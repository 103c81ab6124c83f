namespace H2T.Data;

/// <summary>Shape of one image in a source: channels, height, width (CHW, uint8).</summary>
public readonly record struct ImageShape(int Channels, int Height, int Width)
{
    public int Size => Channels * Height * Width;
    public override string ToString() => $"{Channels}x{Height}x{Width}";
}

/// <summary>Labelled images decoded on demand; <see cref="ReadInto"/> must be thread-safe. uint8, CHW layout,
/// exactly <c>Shape.Size</c> bytes.</summary>
public interface IImageSource
{
    int Count { get; }
    ImageShape Shape { get; }
    IReadOnlyList<int> Labels { get; }
    void ReadInto(int index, Span<byte> chw);
    /// <summary>Where image <paramref name="index"/> comes from, for error messages (a file path, or file +
    /// record).</summary>
    string Describe(int index);
}

/// <summary>Per-channel mean and std in [0,1] pixel units (pixels scale by 1/255, like PyTorch's ToTensor).</summary>
public sealed record Normalization(float[] Mean, float[] Std)
{
    public static Normalization FashionMnist { get; } = new([0.2860f], [0.3530f]);
    public static Normalization Mnist { get; } = new([0.1307f], [0.3081f]);
    public static Normalization Cifar { get; } = new([0.4914f, 0.4822f, 0.4465f], [0.2023f, 0.1994f, 0.2010f]);
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>Per-channel (scale, shift) with x * scale - shift == (x / 255 - mean) / std for uint8 pixels x: the one
    /// normalisation the data loader and <c>h2t predict</c> both apply, so their inputs agree bit for bit.</summary>
    public (float[] Scale, float[] Shift) ForBytes() =>
        ([.. Std.Select(s => 1f / (255f * s))], [.. Mean.Zip(Std, (m, s) => m / s)]);

    internal void Validate(int channels)
    {
        if (Mean.Length != channels || Std.Length != channels)
            throw new ArgumentException(
                $"normalization has {Mean.Length} mean / {Std.Length} std values; the images have {channels} " +
                    $"channel(s)");
        if (Std.Any(s => !(s > 0)))
            throw new ArgumentException("normalization std values must be > 0");
    }
}

/// <summary>Training-time augmentation, applied per batch by <see cref="BatchLoader"/>.
/// RandomResizedCrop (scale 0.08..1, ratio 3/4..4/3, bilinear) resamples to <see cref="OutputSize"/>; without it
/// the output has the source's size.</summary>
public sealed record AugmentConfig(bool RandomCrop = false, int Padding = 4, bool HorizontalFlip = false,
    bool RandomResizedCrop = false, int OutputSize = 0)
{
    /// <summary>Random crop with 4-pixel zero padding + horizontal flip: the CIFAR / Fashion-MNIST recipe.</summary>
    public static AugmentConfig CropFlip { get; } = new(RandomCrop: true, Padding: 4, HorizontalFlip: true);
    public static AugmentConfig None { get; } = new();

    /// <summary>Whether two passes over an image can give different pixels (anything random is switched on).</summary>
    public bool Draws => (RandomCrop && Padding > 0) || HorizontalFlip || RandomResizedCrop;
}

/// <summary>A data file is malformed, truncated or inconsistent. The message names the file and where.</summary>
public sealed class DataFormatException(string message, Exception? inner = null) : Exception(message, inner);
