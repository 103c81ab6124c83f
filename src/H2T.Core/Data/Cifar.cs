using System.Formats.Tar;
using System.IO.Compression;

namespace H2T.Data;

/// <summary>CIFAR-10 / CIFAR-100 binary versions: the extracted folder (<c>cifar-10-batches-bin</c>,
/// <c>cifar-100-binary</c>) or the <c>.tar.gz</c> itself. Records are [label][3072 CHW pixels] for CIFAR-10 and
/// [coarse][fine][3072] for CIFAR-100 (fine labels are used).</summary>
public static class Cifar
{
    public const int ImageBytes = 3 * 32 * 32;
    public static readonly ImageShape Shape = new(3, 32, 32);

    public static readonly string[] Cifar10Classes =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>Returns (train, test) for CIFAR-10 (<paramref name="hundred"/> false) or CIFAR-100.</summary>
    public static (InMemoryImageSource Train, InMemoryImageSource Test) Load(string path, bool hundred)
    {
        string[] trainFiles = hundred ? ["train.bin"] : [.. Enumerable.Range(1, 5).Select(i => $"data_batch_{i}.bin")];
        string[] testFiles = hundred ? ["test.bin"] : ["test_batch.bin"];
        var files = ReadFiles(path, [.. trainFiles, .. testFiles]);
        return (Parse(trainFiles.Select(f => files[f]).ToList(), hundred),
            Parse(testFiles.Select(f => files[f]).ToList(), hundred));
    }

    /// <summary>Parses records of one split (possibly several batch files) into one in-memory source.</summary>
    public static InMemoryImageSource Parse(IReadOnlyList<(string Name, byte[] Bytes)> files, bool hundred)
    {
        int labelBytes = hundred ? 2 : 1, record = labelBytes + ImageBytes, numClasses = hundred ? 100 : 10;
        foreach (var (name, bytes) in files)
        {
            if (bytes.Length == 0 || bytes.Length % record != 0)
                throw new DataFormatException(
                    $"{name}: {bytes.Length} bytes is not a whole number of {record}-byte records " +
                    $"(truncated at byte offset {bytes.Length / record * record}?): expected the CIFAR-{numClasses} " +
                        $"binary format");
        }
        int total = files.Sum(f => f.Bytes.Length / record);
        var pixels = new byte[(long)total * ImageBytes];
        var labels = new int[total];
        var origin = new (string Name, int Record)[total];
        int k = 0;
        foreach (var (name, bytes) in files)
        {
            for (int r = 0; r < bytes.Length / record; r++, k++)
            {
                int at = r * record;
                int label = bytes[at + labelBytes - 1];
                if (label >= numClasses)
                    throw new DataFormatException(
                        $"{name}: label {label} at byte offset {at + labelBytes - 1} (record {r}) is out of range: " +
                        $"expected 0..{numClasses - 1}");
                labels[k] = label;
                origin[k] = (name, r);
                bytes.AsSpan(at + labelBytes, ImageBytes).CopyTo(pixels.AsSpan(k * ImageBytes, ImageBytes));
            }
        }
        return new InMemoryImageSource(pixels, Shape, labels, i => $"{origin[i].Name} record {origin[i].Record}");
    }

    static Dictionary<string, (string, byte[])> ReadFiles(string path, string[] wanted)
    {
        var found = new Dictionary<string, (string, byte[])>();
        if (Directory.Exists(path))
        {
            foreach (var w in wanted)
            {
                var hit = Directory.EnumerateFiles(path, w,
                    SearchOption.AllDirectories).Order(StringComparer.Ordinal).FirstOrDefault();
                if (hit is not null) found[w] = (hit, File.ReadAllBytes(hit));
            }
        }
        else if (File.Exists(path))
        {
            try
            {
                using var fs = File.OpenRead(path);
                using var gz = new GZipStream(fs, CompressionMode.Decompress);
                using var tar = new TarReader(gz);
                while (tar.GetNextEntry() is { } entry)
                {
                    var name = Path.GetFileName(entry.Name);
                    if (entry.DataStream is null || !wanted.Contains(name)) continue;
                    var ms = new MemoryStream();
                    entry.DataStream.CopyTo(ms);
                    found[name] = ($"{path}:{entry.Name}", ms.ToArray());
                }
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
            {
                throw new DataFormatException($"{path}: not a readable .tar.gz ({e.Message})", e);
            }
        }
        else throw new FileNotFoundException(
            $"{path}: no such file or folder (expected the CIFAR binary folder or its .tar.gz)", path);
        var missing = wanted.Where(w => !found.ContainsKey(w)).ToList();
        if (missing.Count > 0)
            throw new DataFormatException(
                $"{path}: missing {string.Join(", ", missing)}: expected the CIFAR binary version's batch files");
        return found;
    }
}
