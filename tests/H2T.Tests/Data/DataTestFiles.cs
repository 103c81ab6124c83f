using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using SkiaSharp;

namespace H2T.Tests.Data;

/// <summary>A temporary folder for real (possibly malformed) files a test writes; deleted afterwards.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(),
        "h2t-test-" + Guid.NewGuid().ToString("N")));
    public string Path { get; }
    public string File(string relative) => System.IO.Path.Combine(Path, relative);

    public string Write(string relative, byte[] bytes)
    {
        var p = File(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        System.IO.File.WriteAllBytes(p, bytes);
        return p;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { }
    }
}

/// <summary>Builders for the binary formats, so tests can write exact, tiny and deliberately broken files.</summary>
public static class DataTestFiles
{
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !System.IO.File.Exists(Path.Combine(dir.FullName, "H2T.slnx"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("H2T.slnx not found above the test output");
        }
    }

    /// <summary>The shared CIFAR-10 JPEG tarball: ../shared next to the repository (developers and CI alike).</summary>
    public static string SharedCifarJpg => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data",
        "cifar10-jpg.tar.gz"));

    public static byte[] IdxImages(int count, int rows, int cols, Func<int, byte>? pixel = null)
    {
        var b = new byte[16 + count * rows * cols];
        BinaryPrimitives.WriteInt32BigEndian(b, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), cols);
        for (int i = 16; i < b.Length; i++) b[i] = pixel?.Invoke(i - 16) ?? (byte)(i * 7);
        return b;
    }

    public static byte[] IdxLabels(byte[] labels)
    {
        var b = new byte[8 + labels.Length];
        BinaryPrimitives.WriteInt32BigEndian(b, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), labels.Length);
        labels.CopyTo(b, 8);
        return b;
    }

    public static byte[] Gzip(byte[] raw)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(raw);
        return ms.ToArray();
    }

    /// <summary>CIFAR records: label byte(s) then 3072 pixels whose value encodes (record, position).</summary>
    public static byte[] CifarRecords(int[] labels, bool hundred)
    {
        int lb = hundred ? 2 : 1, rec = lb + 3072;
        var b = new byte[labels.Length * rec];
        for (int r = 0; r < labels.Length; r++)
        {
            if (hundred) { b[r * rec] = (byte)(labels[r] / 5); b[r * rec + 1] = (byte)labels[r]; }
            else b[r * rec] = (byte)labels[r];
            for (int p = 0; p < 3072; p++) b[r * rec + lb + p] = (byte)(r * 31 + p);
        }
        return b;
    }

    public static void WriteTarGz(string path, IEnumerable<(string Name, byte[] Bytes)> files)
    {
        using var fs = System.IO.File.Create(path);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        using var tar = new TarWriter(gz, TarEntryFormat.Pax);
        foreach (var (name, bytes) in files)
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) });
    }

    /// <summary>An encoded image of solid colour (r, g, b), or a horizontal gradient when <paramref
    /// name="gradient"/>.</summary>
    public static byte[] Image(int w, int h, byte r, byte g, byte b,
        SKEncodedImageFormat format = SKEncodedImageFormat.Png, bool gradient = false)
    {
        using var bmp = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                bmp.SetPixel(x, y, gradient ? new SKColor((byte)(x * 255 / Math.Max(1, w - 1)), g, b) : new SKColor(r,
                    g, b));
        using var data = bmp.Encode(format, 100);
        return data.ToArray();
    }

    /// <summary>The real CIFAR-10 JPEGs committed with the tests (Fixtures/cifar10-jpg-sample, see its
    /// README).</summary>
    public static string CifarJpgSample => Path.Combine(RepoRoot, "tests", "H2T.Tests", "Data", "Fixtures",
        "cifar10-jpg-sample");

    public const int SampleTrainPerClass = 20;
    public const int SampleTestPerClass = 10;

    /// <summary>The first <paramref name="perClass"/> JPEGs of each class and split (the archive's order, which is name
    /// order) copied from the committed sample into <paramref name="root"/>: a bare clone has them.</summary>
    public static void ExtractCifarJpgSample(string root, int perClass)
    {
        if (perClass > SampleTestPerClass)
            throw new ArgumentOutOfRangeException(nameof(perClass),
                $"the committed sample has {SampleTestPerClass} test images per class");
        foreach (var split in new[] { "train", "test" })
            foreach (var classDir in Directory.GetDirectories(Path.Combine(CifarJpgSample,
                split)).Order(StringComparer.Ordinal))
            {
                var target = Path.Combine(root, split, Path.GetFileName(classDir));
                Directory.CreateDirectory(target);
                foreach (var f in Directory.GetFiles(classDir, "*.jpg").Order(StringComparer.Ordinal).Take(perClass))
                    System.IO.File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
            }
    }
}

/// <summary>
/// A test that needs the whole shared CIFAR-10 JPEG archive (../shared/data beside the clone). Without it the test
/// is reported as skipped, with the reason, instead of failing a bare clone; CI has the archive and runs it.
/// </summary>
public sealed class RequiresSharedCifarArchiveFactAttribute : FactAttribute
{
    public RequiresSharedCifarArchiveFactAttribute()
    {
        if (!System.IO.File.Exists(DataTestFiles.SharedCifarJpg))
            Skip = $"not run: needs the whole CIFAR-10 JPEG archive at {DataTestFiles.SharedCifarJpg} " +
                $"(../shared/data beside the clone), absent here";
    }
}
