using System.Buffers.Binary;
using SkiaSharp;

namespace H2T.Data;

/// <summary>
/// An image file's pixel mode as its header says it, read exactly and cheaply (no pixels decoded). Names follow what
/// a user recognises (PIL's modes): "grey", "grey+alpha", "RGB", "RGBA", "palette", "CMYK", with "16-bit " before
/// a PNG mode of 16 bits per sample and "12-bit " before a 12-bit JPEG's.
/// </summary>
public static class ImageHeader
{
    static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The mode from the PNG IHDR chunk (bit depth, colour type) or the JPEG start-of-frame (component
    /// count: 1 grey, 3 RGB (YCbCr), 4 CMYK (or YCCK, which PIL also opens as CMYK)); null for other formats or a
    /// header too short to say.</summary>
    public static string? Sniff(ReadOnlySpan<byte> file)
    {
        if (file.Length >= 26 && file[..8].SequenceEqual(PngSignature) && file[12..16].SequenceEqual("IHDR"u8))
        {
            int depth = file[24];
            string? mode = file[25] switch
            {
                0 => "grey", 2 => "RGB", 3 => "palette", 4 => "grey+alpha", 6 => "RGBA", _ => null,
            };
            return mode is null ? null : depth == 16 ? "16-bit " + mode : mode;
        }
        if (file.Length >= 4 && file[0] == 0xFF && file[1] == 0xD8) return JpegMode(file);
        return null;
    }

    /// <summary>The mode of an image Skia opened, for formats <see cref="Sniff"/> does not read (BMP, GIF,
    /// WebP).</summary>
    public static string FromCodec(SKCodec codec)
    {
        ArgumentNullException.ThrowIfNull(codec);
        var info = codec.Info;
        if (codec.EncodedFormat == SKEncodedImageFormat.Gif) return "palette";
        if (info.ColorType == SKColorType.Gray8) return "grey";
        return info.AlphaType == SKAlphaType.Opaque ? "RGB" : "RGBA";
    }

    static string? JpegMode(ReadOnlySpan<byte> f)
    {
        int i = 2;
        while (i + 4 <= f.Length)
        {
            if (f[i] != 0xFF) return null; // not at a marker: a broken stream
            while (i < f.Length && f[i] == 0xFF) i++; // fill bytes
            if (i >= f.Length) return null;
            byte marker = f[i++];
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) continue; // markers without a length
            if (marker is 0xD9 or 0xDA || i + 2 > f.Length) return null; // end or scan data before any frame
            int length = BinaryPrimitives.ReadUInt16BigEndian(f[i..]);
            // Start of frame: C0-CF except DHT (C4), JPG (C8) and DAC (CC). Layout: length, precision, height,
            // width, component count.
            if (marker is >= 0xC0 and <= 0xCF && marker is not (0xC4 or 0xC8 or 0xCC))
            {
                if (i + 8 > f.Length) return null;
                int precision = f[i + 2];
                string? mode = f[i + 7] switch { 1 => "grey", 3 => "RGB", 4 => "CMYK", _ => null };
                return mode is null ? null : precision > 8 ? $"{precision}-bit {mode}" : mode;
            }
            i += length;
        }
        return null;
    }
}

/// <summary>
/// A 64-bit perceptual hash (DCT pHash): the image in grey (ITU-R 601 luma), area-averaged to 32x32, its 2-D DCT-II,
/// and one bit per coefficient of the lowest 8x8 frequencies: set when it is above their median. Re-encoding,
/// resizing or mild blur move few bits; a different picture moves about half of them.
/// </summary>
public static class PerceptualHash
{
    const int Grid = 32, Low = 8;
    static readonly double[] Cos = MakeCos();

    static double[] MakeCos()
    {
        var c = new double[Low * Grid];
        for (int u = 0; u < Low; u++)
            for (int x = 0; x < Grid; x++)
                c[u * Grid + x] = Math.Cos((2 * x + 1) * u * Math.PI / (2 * Grid));
        return c;
    }

    /// <summary>The hash of unpremultiplied RGBA pixels (<paramref name="rowBytes"/> apart; alpha is ignored, as the
    /// training decode drops it).</summary>
    public static ulong Of(ReadOnlySpan<byte> rgba, int width, int height, int rowBytes)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"image size {width}x{height}: expected positive");
        var grid = new double[Grid * Grid];
        var column = new double[width];
        for (int by = 0; by < Grid; by++)
        {
            // Source rows and columns of this cell: at least one, so images under 32 pixels repeat theirs.
            int y0 = by * height / Grid, y1 = Math.Max(y0 + 1, (by + 1) * height / Grid);
            Array.Clear(column);
            for (int y = y0; y < y1; y++)
            {
                var row = rgba.Slice(y * rowBytes, width * 4);
                for (int x = 0; x < width; x++)
                    column[x] += 0.299 * row[4 * x] + 0.587 * row[4 * x + 1] + 0.114 * row[4 * x + 2];
            }
            for (int bx = 0; bx < Grid; bx++)
            {
                int x0 = bx * width / Grid, x1 = Math.Max(x0 + 1, (bx + 1) * width / Grid);
                double s = 0;
                for (int x = x0; x < x1; x++) s += column[x];
                grid[by * Grid + bx] = s / ((y1 - y0) * (x1 - x0));
            }
        }
        // Separable DCT, only the 8 lowest frequencies each way: rows first (8 x 32), then columns (8 x 8).
        var rows = new double[Low * Grid];
        for (int u = 0; u < Low; u++)
            for (int y = 0; y < Grid; y++)
            {
                double s = 0;
                for (int x = 0; x < Grid; x++) s += Cos[u * Grid + x] * grid[y * Grid + x];
                rows[u * Grid + y] = s;
            }
        var coef = new double[Low * Low];
        for (int v = 0; v < Low; v++)
            for (int u = 0; u < Low; u++)
            {
                double s = 0;
                for (int y = 0; y < Grid; y++) s += Cos[v * Grid + y] * rows[u * Grid + y];
                // Rounded so that a flat image's rounding noise (about 1e-12) cannot set bits at random.
                coef[v * Low + u] = Math.Round(s, 6);
            }
        var sorted = (double[])coef.Clone();
        Array.Sort(sorted);
        double median = (sorted[31] + sorted[32]) / 2;
        ulong hash = 0;
        for (int k = 0; k < 64; k++)
            if (coef[k] > median) hash |= 1UL << k;
        return hash;
    }

    public static int Distance(ulong a, ulong b) => System.Numerics.BitOperations.PopCount(a ^ b);

    /// <summary>
    /// Every pair (i in <paramref name="a"/>, j in <paramref name="b"/>) within <paramref name="maxBits"/> bits, or
    /// every pair i &lt; j of <paramref name="a"/> when <paramref name="b"/> is null; exact. By the pigeonhole rule:
    /// cut the 64 bits into maxBits + 1 bands; two hashes that close agree on at least one whole band, so only
    /// hashes sharing a band value are compared (each pair once, at the first band they share). Large sets then cost
    /// about n times the bucket size instead of n x m.
    /// </summary>
    public static List<(int A, int B, int Distance)> Pairs(ulong[] a, ulong[]? b, int maxBits)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (maxBits is < 0 or > 63) throw new ArgumentOutOfRangeException(nameof(maxBits), maxBits,
            "expected 0..63 bits");
        int bands = maxBits + 1;
        var buckets = new Dictionary<ulong, List<int>>[bands];
        for (int k = 0; k < bands; k++)
        {
            buckets[k] = [];
            for (int i = 0; i < a.Length; i++)
            {
                var key = Band(a[i], k, bands);
                if (!buckets[k].TryGetValue(key, out var list)) buckets[k][key] = list = [];
                list.Add(i);
            }
        }
        var queries = b ?? a;
        var found = new List<(int, int, int)>[queries.Length];
        Parallel.For(0, queries.Length, j =>
        {
            var q = queries[j];
            List<(int, int, int)>? mine = null;
            for (int k = 0; k < bands; k++)
            {
                if (!buckets[k].TryGetValue(Band(q, k, bands), out var list)) continue;
                foreach (var i in list)
                {
                    if (b is null && i >= j) break; // within one set: each pair once, i < j (lists are ascending)
                    var other = a[i];
                    int d = Distance(other, q);
                    if (d > maxBits) continue;
                    bool earlier = false;
                    for (int e = 0; e < k && !earlier; e++) earlier = Band(other, e, bands) == Band(q, e, bands);
                    if (!earlier) (mine ??= []).Add((i, j, d));
                }
            }
            found[j] = mine ?? [];
        });
        return [.. found.SelectMany(f => f).OrderBy(p => p.Item1).ThenBy(p => p.Item2)];
    }

    static ulong Band(ulong h, int k, int bands)
    {
        int start = k * 64 / bands, end = (k + 1) * 64 / bands;
        int width = end - start;
        return ((h >> start) & (width == 64 ? ulong.MaxValue : (1UL << width) - 1));
    }
}
