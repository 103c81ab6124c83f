using System.Formats.Tar;
using System.IO.Compression;

namespace H2T.Tests.Data;

/// <summary>
/// The committed CIFAR-10 sample against the whole shared archive: the same bytes under the same names, and the
/// archive holds the full set (5,000 train / 1,000 test images per class).
/// </summary>
public sealed class CifarArchiveTests
{
    [RequiresSharedCifarArchiveFact]
    public void TheCommittedSampleIsTheArchivesFirstImagesOfEachClassByteForByte()
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        int compared = 0;
        using var fs = File.OpenRead(DataTestFiles.SharedCifarJpg);
        using var gz = new GZipStream(fs, CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } e)
        {
            if (e.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) ||
                e.DataStream is null) continue;
            var dir = Path.GetDirectoryName(e.Name)!;
            counts[dir] = counts.GetValueOrDefault(dir) + 1;
            var committed = Path.Combine(DataTestFiles.CifarJpgSample, e.Name);
            if (!File.Exists(committed)) continue;
            using var ms = new MemoryStream();
            e.DataStream.CopyTo(ms);
            Assert.True(ms.ToArray().AsSpan().SequenceEqual(File.ReadAllBytes(committed)),
                $"{e.Name} differs from the archive");
            compared++;
        }
        Assert.Equal(20, counts.Count);
        Assert.All(counts, kv => Assert.Equal(kv.Key.StartsWith("train", StringComparison.Ordinal) ? 5000 : 1000,
            kv.Value));
        var sampleFiles = Directory.GetFiles(DataTestFiles.CifarJpgSample, "*.jpg", SearchOption.AllDirectories).Length;
        Assert.Equal(10 * (DataTestFiles.SampleTrainPerClass + DataTestFiles.SampleTestPerClass), sampleFiles);
        Assert.Equal(sampleFiles, compared);
    }
}
