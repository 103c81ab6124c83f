using System.Formats.Tar;
using System.IO.Compression;
using SkiaSharp;

namespace H2T.Data;

/// <summary>How an encoded image becomes a fixed-size CHW array. <see cref="ResizeShorter"/> 0: stretch to
/// <see cref="Output"/> when the size differs (no-op when equal); otherwise resize the shorter side to it
/// (bilinear), then center-crop <see cref="Output"/>.</summary>
public sealed record DecodePlan(ImageShape Output, int ResizeShorter = 0);

/// <summary>Images stored as JPEG/PNG files (image folders, list files), decoded lazily with SkiaSharp.</summary>
public sealed class FileImageSource : IImageSource
{
    readonly string[] paths;
    readonly int[] labels;
    readonly string[] origins;

    /// <param name="origins">Optional per-image origin for messages (e.g. "train.txt line 7"); defaults to the
    /// path.</param>
    public FileImageSource(string[] paths, int[] labels, DecodePlan plan, string[]? origins = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(plan);
        if (paths.Length != labels.Length) throw new ArgumentException(
            $"{paths.Length} paths but {labels.Length} labels");
        if (plan.Output.Channels is not (1 or
            3)) throw new ArgumentException($"decoded images have 1 or 3 channels, not {plan.Output.Channels}");
        this.paths = paths;
        this.labels = labels;
        this.origins = origins ?? paths;
        Plan = plan;
    }

    public DecodePlan Plan { get; }
    public int Count => paths.Length;
    public ImageShape Shape => Plan.Output;
    public IReadOnlyList<int> Labels => labels;
    public IReadOnlyList<string> Paths => paths;
    public string Describe(int index) => origins[index] == paths[index] ? paths[index] :
        $"{origins[index]}: {paths[index]}";
    public void ReadInto(int index, Span<byte> chw) => ImageDecoder.Decode(paths[index], Plan, chw, Describe(index));
}

/// <summary>SkiaSharp decoding into CHW uint8 with the resize / center-crop of a <see cref="DecodePlan"/>.</summary>
public static class ImageDecoder
{
    static readonly SKSamplingOptions Bilinear = new(SKFilterMode.Linear, SKMipmapMode.None);

    /// <summary>PIL's <c>Image.MAX_IMAGE_PIXELS</c> (1024 * 1024 * 1024 / 4 / 3): the default pixel limit. PIL only
    /// warns up to twice this and errors beyond; here an image over the limit itself is refused.</summary>
    public const long DefaultMaxPixels = 89_478_485;

    /// <summary>The decompression-bomb guard: an image whose header says more pixels than this is refused before any
    /// pixel is decoded (by <see cref="Decode(string, DecodePlan, Span{byte}, string?)"/>, <see cref="Probe"/> and
    /// the stream overload). Process-wide, as PIL's is; <c>long.MaxValue</c> switches it off.</summary>
    public static long MaxPixels
    {
        get => Interlocked.Read(ref maxPixels);
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "the pixel limit must be >= 1");
            Interlocked.Exchange(ref maxPixels, value);
        }
    }
    static long maxPixels = DefaultMaxPixels;

    /// <summary>Refuses a <paramref name="width"/> x <paramref name="height"/> image (from its header) over
    /// <paramref name="limit"/> pixels, naming <paramref name="what"/>.</summary>
    public static void CheckPixels(int width, int height, string what, long limit)
    {
        if (OverPixelLimit(width, height, limit) is { } why) throw new DataFormatException($"{what}: {why}");
    }

    /// <summary>Why a <paramref name="width"/> x <paramref name="height"/> image is over <paramref name="limit"/>
    /// pixels (without the file's name), or null when it is not.</summary>
    public static string? OverPixelLimit(int width, int height, long limit)
    {
        long pixels = (long)width * height;
        if (pixels <= limit) return null;
        return string.Format(System.Globalization.CultureInfo.InvariantCulture,
            "{0}x{1} = {2:N0} pixels is over the limit of {3:N0} (a decompression-bomb guard; raise it with " +
            "--max-pixels)", width, height, pixels, limit);
    }

    /// <summary>Width and height of an encoded image without decoding its pixels (the header's; the pixel limit
    /// applies).</summary>
    public static (int Width, int Height) Probe(string path)
    {
        using var codec = Open(path, path);
        return (codec.Info.Width, codec.Info.Height);
    }

    static SKCodec Open(string path, string what)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{what}: image file not found", path);
        var codec = SKCodec.Create(path, out var result);
        if (codec is null)
            throw new DataFormatException($"{what}: not a decodable image ({result}): expected JPEG or PNG");
        try { CheckPixels(codec.Info.Width, codec.Info.Height, what, MaxPixels); }
        catch { codec.Dispose(); throw; }
        return codec;
    }

    public static void Decode(string path, DecodePlan plan, Span<byte> chw, string? what = null)
    {
        what ??= path;
        using var codec = Open(path, what);
        Decode(codec, plan, chw, what);
    }

    /// <summary>An encoded image (JPEG or PNG bytes) from a stream, decoded as a file would be (read once into Skia's
    /// buffer).</summary>
    public static void Decode(Stream encoded, DecodePlan plan, Span<byte> chw, string what)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        using var copy = encoded.CanSeek ? null : new MemoryStream(); // Skia needs the length up front
        if (copy is not null) { encoded.CopyTo(copy); copy.Position = 0; }
        using var data = SKData.Create(copy ?? encoded)
            ?? throw new DataFormatException($"{what}: the stream could not be read");
        using var codec = SKCodec.Create(data)
            ?? throw new DataFormatException($"{what}: not a decodable image: expected JPEG or PNG bytes");
        CheckPixels(codec.Info.Width, codec.Info.Height, what, MaxPixels);
        Decode(codec, plan, chw, what);
    }

    /// <summary>Interleaved 8-bit RGB pixels (row-major, <paramref name="width"/> x <paramref name="height"/>) through
    /// the
    /// same resize / crop / channel conversion as a decoded file.</summary>
    public static void FromRgb(ReadOnlySpan<byte> rgb, int width, int height, DecodePlan plan, Span<byte> chw)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"image size {width}x{height}: expected positive");
        if (rgb.Length != checked(width * height * 3))
            throw new ArgumentException(
                $"{rgb.Length} bytes of RGB pixels for a {width}x{height} image: expected {width * height * 3}");
        using var full = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var dst = full.GetPixelSpan();
        int rowBytes = full.RowBytes;
        for (int y = 0; y < height; y++)
        {
            var src = rgb.Slice(y * width * 3, width * 3);
            var row = dst.Slice(y * rowBytes, width * 4);
            for (int x = 0; x < width; x++)
            {
                row[4 * x] = src[3 * x];
                row[4 * x + 1] = src[3 * x + 1];
                row[4 * x + 2] = src[3 * x + 2];
                row[4 * x + 3] = 255;
            }
        }
        Transform(full, plan, chw, "RGB pixels");
    }

    // Pixels as PIL's Image.open(...).convert("RGB") gives them: colour types (grey, palette, CMYK, 16-bit) become
    // 8-bit RGB(A) unpremultiplied, alpha is dropped, and EXIF orientation is NOT applied (torchvision's loaders do
    // not apply it either).
    static void Decode(SKCodec codec, DecodePlan plan, Span<byte> chw, string what)
    {
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var full = new SKBitmap(info);
        var rc = codec.GetPixels(info, full.GetPixels());
        if (rc is not SKCodecResult.Success)
            throw new DataFormatException($"{what}: image does not decode ({rc}): the file is truncated or corrupt");
        Transform(full, plan, chw, what);
    }

    static void Transform(SKBitmap full, DecodePlan plan, Span<byte> chw, string what)
    {
        var (c, h, w) = plan.Output;
        if (chw.Length != plan.Output.Size) throw new ArgumentException(
            $"buffer holds {chw.Length} bytes, the image {plan.Output.Size}");
        var info = full.Info;
        SKBitmap? scaled = null;
        try
        {
            var src = full;
            if (plan.ResizeShorter > 0)
            {
                // Crop in source coordinates first, then scale only that region: same result as resize-then-crop.
                double s = (double)plan.ResizeShorter / Math.Min(info.Width, info.Height);
                double cw = w / s, ch = h / s;
                int x0 = (int)Math.Round((info.Width - cw) / 2), y0 = (int)Math.Round((info.Height - ch) / 2);
                var rect = SKRectI.Create(Math.Max(0, x0), Math.Max(0, y0),
                    Math.Min(info.Width, (int)Math.Round(cw)), Math.Min(info.Height, (int)Math.Round(ch)));
                using var sub = new SKBitmap();
                if (!full.ExtractSubset(sub,
                    rect)) throw new DataFormatException($"{what}: cannot crop {rect} from {info.Width}x{info.Height}");
                scaled = Scale(sub, w, h, what);
                src = scaled;
            }
            else if (info.Width != w || info.Height != h)
            {
                scaled = Scale(full, w, h, what);
                src = scaled;
            }
            Deinterleave(src.GetPixelSpan(), src.RowBytes, c, h, w, chw);
        }
        finally { scaled?.Dispose(); }
    }

    static SKBitmap Scale(SKBitmap src, int w, int h, string what)
    {
        var dst = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        if (!src.ScalePixels(dst,
            Bilinear)) { dst.Dispose(); throw new DataFormatException($"{what}: resize to {w}x{h} failed"); }
        return dst;
    }

    // RGBA rows -> planar CHW (grey = ITU-R 601 luma for 1 channel). Decoding dominates the cost of this pass.
    static void Deinterleave(ReadOnlySpan<byte> rgba, int rowBytes, int c, int h, int w, Span<byte> chw)
    {
        int plane = h * w;
        for (int y = 0; y < h; y++)
        {
            var row = rgba.Slice(y * rowBytes, w * 4);
            int o = y * w;
            if (c == 3)
            {
                for (int x = 0; x < w; x++)
                {
                    chw[o + x] = row[4 * x];
                    chw[plane + o + x] = row[4 * x + 1];
                    chw[2 * plane + o + x] = row[4 * x + 2];
                }
            }
            else
            {
                for (int x = 0; x < w; x++)
                    chw[o + x] = (byte)((299 * row[4 * x] + 587 * row[4 * x + 1] + 114 * row[4 * x + 2] + 500) / 1000);
            }
        }
    }
}

/// <summary>Image folders: <c>root/&lt;class&gt;/*.{jpg,jpeg,png}</c>, class index = ordinal-sorted folder
/// order.</summary>
public static class ImageFolder
{
    static readonly string[] Extensions = [".jpg", ".jpeg", ".png"];

    /// <summary>Lists the images under <paramref name="root"/>. With <paramref name="classNames"/> (e.g. the train
    /// split's), the folders must be exactly those classes.</summary>
    public static (string[] Paths, int[] Labels, string[] ClassNames) Scan(string root,
        IReadOnlyList<string>? classNames = null)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException(
            $"{root}: image folder not found (expected <root>/<class>/*.jpg|jpeg|png)");
        // Hidden folders (.ipynb_checkpoints, .git) are not classes.
        var dirs = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Where(d =>
            !d.StartsWith('.')).Order(StringComparer.Ordinal).ToArray();
        if (dirs.Length == 0) throw new DataFormatException(
            $"{root}: no class folders: expected <root>/<class>/*.jpg|jpeg|png");
        if (classNames is not null && !dirs.SequenceEqual(classNames))
            throw new DataFormatException(
                $"{root}: class folders [{string.Join(", ", dirs)}] differ from the training classes " +
                $"[{string.Join(", ", classNames)}]");
        var paths = new List<string>();
        var labels = new List<int>();
        for (int c = 0; c < dirs.Length; c++)
        {
            var dir = Path.Combine(root, dirs[c]);
            var files = Directory.EnumerateFiles(dir)
                .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new DataFormatException(
                $"{dir}: class {c} '{dirs[c]}' has no .jpg/.jpeg/.png images");
            paths.AddRange(files);
            labels.AddRange(Enumerable.Repeat(c, files.Count));
        }
        return (paths.ToArray(), labels.ToArray(), dirs);
    }

    /// <summary>Extracts a .tar.gz once into a cache folder (next to it when writable, else under the temp folder)
    /// and returns that folder. Extraction goes to a temporary name first, so a crash never leaves half a
    /// cache.</summary>
    public static string ExtractCached(string tarGz)
    {
        var file = new FileInfo(tarGz);
        if (!file.Exists) throw new FileNotFoundException($"{tarGz}: archive not found", tarGz);
        var key = $"{Path.GetFileName(tarGz)}-{file.Length}-{file.LastWriteTimeUtc.Ticks}";
        string[] candidates = [Path.Combine(file.DirectoryName ?? ".", ".h2t-cache", key),
            Path.Combine(Path.GetTempPath(), "h2t-cache", key)];
        foreach (var target in candidates)
            if (File.Exists(Path.Combine(target, ".complete"))) return target;
        Exception? last = null;
        foreach (var target in candidates)
        {
            var temp = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.h2t-tmp";
            try
            {
                Directory.CreateDirectory(temp);
                using (var fs = File.OpenRead(tarGz))
                using (var gz = new GZipStream(fs, CompressionMode.Decompress))
                    TarFile.ExtractToDirectory(gz, temp, overwriteFiles: true);
                File.WriteAllText(Path.Combine(temp, ".complete"), tarGz);
                try { Directory.Move(temp, target); }
                // another process won
                catch (IOException) when (File.Exists(Path.Combine(target, ".complete"))) { Directory.Delete(temp,
                    true); }
                return target;
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                last = e;
                try { if (Directory.Exists(temp)) Directory.Delete(temp, true); } catch (IOException) { }
            }
            catch (InvalidDataException e)
            {
                try { if (Directory.Exists(temp)) Directory.Delete(temp, true); } catch (IOException) { }
                throw new DataFormatException($"{tarGz}: not a readable .tar.gz ({e.Message})", e);
            }
        }
        throw new IOException($"{tarGz}: cannot extract to {string.Join(" or ", candidates)}: {last?.Message}", last);
    }
}

/// <summary>List files (ImageNet-LT, Places-LT, iNaturalist 2018 splits): one <c>relative/path label</c> per
/// line.</summary>
public static class ListFile
{
    public static (string[] Paths, int[] Labels, string[] Origins) Read(string listPath, string imageRoot,
        int numClasses)
    {
        if (!File.Exists(listPath)) throw new FileNotFoundException($"{listPath}: list file not found", listPath);
        if (!Directory.Exists(imageRoot)) throw new DirectoryNotFoundException(
            $"{imageRoot}: image root not found (for {listPath})");
        var paths = new List<string>();
        var labels = new List<int>();
        var origins = new List<string>();
        var name = Path.GetFileName(listPath);
        int lineNo = 0;
        foreach (var raw in File.ReadLines(listPath))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0) continue;
            int cut = line.LastIndexOfAny([' ', '\t']);
            if (cut <= 0 || !int.TryParse(line.AsSpan(cut + 1), System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out int label))
                throw new DataFormatException(
                    $"{listPath} line {lineNo}: '{line}' does not parse: expected 'relative/path label' (label a " +
                    $"whole number)");
            if (label >= numClasses)
                throw new DataFormatException(
                    $"{listPath} line {lineNo}: label {label} is out of range: expected 0..{numClasses - 1}");
            paths.Add(Path.Combine(imageRoot, line[..cut].TrimEnd()));
            labels.Add(label);
            origins.Add($"{name} line {lineNo}");
        }
        if (paths.Count == 0) throw new DataFormatException(
            $"{listPath}: no entries: expected lines 'relative/path label'");
        return (paths.ToArray(), labels.ToArray(), origins.ToArray());
    }
}
