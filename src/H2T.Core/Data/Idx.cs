using System.Buffers.Binary;
using System.IO.Compression;

namespace H2T.Data;

/// <summary>IDX files (MNIST, Fashion-MNIST): big-endian magic 0x00000803 (images, 3 dims) or 0x00000801
/// (labels, 1 dim), then the dimension sizes, then uint8 data. Gzipped or raw (detected by content).</summary>
public static class Idx
{
    public const int ImagesMagic = 0x00000803, LabelsMagic = 0x00000801;

    /// <summary>Reads an image file: (pixels of all images, count, rows, cols).</summary>
    public static (byte[] Pixels, int Count, int Rows, int Cols) ReadImages(string path)
    {
        var bytes = ReadAll(path);
        var dims = Header(path, bytes, ImagesMagic, 3);
        long size = (long)dims[0] * dims[1] * dims[2];
        var data = Payload(path, bytes, 16, size, $"{dims[0]} images of {dims[1]}x{dims[2]}");
        return (data, dims[0], dims[1], dims[2]);
    }

    public static byte[] ReadLabels(string path)
    {
        var bytes = ReadAll(path);
        var dims = Header(path, bytes, LabelsMagic, 1);
        return Payload(path, bytes, 8, dims[0], $"{dims[0]} labels");
    }

    static byte[] ReadAll(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        var raw = File.ReadAllBytes(path);
        if (raw.Length < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
        using var gz = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
        var ms = new MemoryStream();
        try { gz.CopyTo(ms); }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(
                $"{path}: corrupt gzip data after {ms.Length} decompressed bytes ({e.Message})", e);
        }
        return ms.ToArray();
    }

    static int[] Header(string path, byte[] bytes, int magic, int ndim)
    {
        int headerLen = 4 + 4 * ndim;
        if (bytes.Length < headerLen)
            throw new DataFormatException(
                $"{path}: truncated at byte offset {bytes.Length}: expected a {headerLen}-byte IDX header");
        int found = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (found != magic)
            throw new DataFormatException(
                $"{path}: wrong magic number 0x{found:x8} at byte offset 0: expected 0x{magic:x8} " +
                $"({(magic == ImagesMagic ? "uint8 images, 3 dimensions" : "uint8 labels, 1 dimension")})");
        var dims = new int[ndim];
        for (int d = 0; d < ndim; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d));
            if (dims[d] <= 0)
                throw new DataFormatException(
                    $"{path}: dimension {d} at byte offset {4 + 4 * d} is {dims[d]}: expected a positive size");
        }
        return dims;
    }

    static byte[] Payload(string path, byte[] bytes, int offset, long size, string what)
    {
        if (bytes.Length - offset < size)
            throw new DataFormatException(
                $"{path}: truncated at byte offset {bytes.Length}: expected {offset + size} bytes ({what})");
        if (bytes.Length - offset > size)
            throw new DataFormatException(
                $"{path}: {bytes.Length - offset - size} extra bytes after byte offset {offset + size}: the header " +
                $"announces {what}");
        return bytes.AsSpan(offset, checked((int)size)).ToArray();
    }

    /// <summary>Loads an image + label file pair into one in-memory source, checking counts and label range.</summary>
    public static InMemoryImageSource Load(string imagesPath, string labelsPath, int numClasses)
    {
        var (pixels, count, rows, cols) = ReadImages(imagesPath);
        var raw = ReadLabels(labelsPath);
        if (raw.Length != count)
            throw new DataFormatException($"{labelsPath}: {raw.Length} labels, but {imagesPath} has {count} images");
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            if (raw[i] >= numClasses)
                throw new DataFormatException(
                    $"{labelsPath}: label {raw[i]} at byte offset {8 + i} (item {i}) is out of range: expected " +
                    $"0..{numClasses - 1}");
            labels[i] = raw[i];
        }
        var name = Path.GetFileName(imagesPath);
        return new InMemoryImageSource(pixels, new ImageShape(1, rows, cols), labels, i => $"{name} image {i}");
    }
}
