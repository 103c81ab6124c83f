using System.Buffers.Binary;
using System.Text;
using H2T.Runs;
using H2T.Cli;
using H2T.Evaluation;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;
using H2T.Training;
using SkiaSharp;
using static TorchSharp.torch;

namespace H2T.Tests.Reporting;

/// <summary>Run reports and their plots, the comparison and embedding figures, TensorBoard event files.</summary>
public sealed class ReportingTests : IDisposable
{
    readonly TinyLongTailedSet set = new(perClassTrain: 40, perClassTest: 12);
    readonly TempDir dir = new();

    static (int Rc, string Output) Run(params string[] args) => CliRunner.Run(args);

    /// <summary>A PNG that decodes, has the size asked for, and is not blank (many distinct colours).</summary>
    static void AssertPlot(string path, int? width = null)
    {
        Assert.True(File.Exists(path), path);
        using var bmp = SKBitmap.Decode(path);
        Assert.NotNull(bmp);
        if (width is { } w) Assert.Equal(w, bmp.Width);
        var colours = new HashSet<uint>();
        for (int y = 0; y < bmp.Height; y += 3)
            for (int x = 0; x < bmp.Width; x += 3)
                colours.Add((uint)bmp.GetPixel(x, y));
        Assert.True(colours.Count > 20, $"{path}: only {colours.Count} colours: blank?");
    }

    string TrainPair()
    {
        var s1 = Path.Combine(dir.Path, "s1");
        var (rc, output) = Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor", "10",
            "--epochs", "2", "--backbone", "resnet8",
            "--batch-size", "32", "--lr", "0.05", "--out", s1, "--tensorboard");
        Assert.True(rc == 0, output);
        Assert.Contains("report: ", output);
        foreach (var rho in new[] { "0", "0.5" })
        {
            (rc, output) = Run("stage2", "--from", Path.Combine(s1, "last.ckpt"), "--rho", rho, "--epochs", "1",
                "--batch-size", "32", "--out", Path.Combine(dir.Path, $"rho{rho}"));
            Assert.True(rc == 0, output);
        }
        return s1;
    }

    [Fact]
    public void EveryRunWritesItsReportWithPlotsAndTheCliComparesRuns()
    {
        var s1 = TrainPair();
        var md = File.ReadAllText(Path.Combine(s1, "report.md"));
        Assert.Contains("| test, final epoch (2) |", md);
        Assert.Contains("training images per class: 40 ", md);
        Assert.Contains("![reliability diagram](reliability.png)", md);
        AssertPlot(Path.Combine(s1, "curves.png"), 1100);
        AssertPlot(Path.Combine(s1, "per-class.png"), 1100);
        AssertPlot(Path.Combine(s1, "reliability.png"), 640);
        AssertPlot(Path.Combine(dir.Path, "rho0.5", "curves.png"));

        var outMd = Path.Combine(dir.Path, "cmp", "report.md");
        var (rc, output) = Run("report", s1, Path.Combine(dir.Path, "rho0"), Path.Combine(dir.Path, "rho0.5"), "--out",
            outMd, "--embedding", "0,9");
        Assert.True(rc == 0, output);
        AssertPlot(Path.Combine(dir.Path, "cmp", "report.png"), 1100);
        AssertPlot(Path.Combine(dir.Path, "cmp", "report-per-class.png"), 1100);
        AssertPlot(Path.Combine(dir.Path, "cmp", "embedding.png"), 3 * 620); // one panel per run
        var cmp = File.ReadAllText(outMd);
        Assert.Contains("![embedding](embedding.png)", cmp);
        Assert.Contains("| rho0.5 |", cmp);

        (rc, output) = Run("report", s1, "--out", outMd, "--embedding", "3");
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("two different class indices", output);
    }

    [Fact]
    public void TensorBoardEventsAreValidRecordsWithTheEpochScalars()
    {
        var s1 = TrainPair();
        var file = Assert.Single(Directory.GetFiles(Path.Combine(s1, "tensorboard"), "events.out.tfevents.*"));
        var events = ReadRecords(file);
        Assert.Contains("brain.Event:2", Encoding.UTF8.GetString(events[0]));
        Assert.Equal(3, events.Count); // the version event and one per epoch
        var metrics = new RunFolder(s1).ReadMetrics();
        var last = Scalars(events[2]);
        Assert.Equal((float)metrics.Epochs[1].TrainLoss, last["train/loss"]);
        Assert.Equal((float)metrics.Final!.Top1, last["test/all"]);
        Assert.Equal((float)metrics.Final.Tail, last["test/tail"]);
    }

    /// <summary>TFRecord framing, checked with an independent (bitwise) CRC-32C.</summary>
    static List<byte[]> ReadRecords(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var records = new List<byte[]>();
        int pos = 0;
        while (pos < bytes.Length)
        {
            var len = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(pos));
            Assert.Equal(Masked(bytes.AsSpan(pos, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 8)));
            var data = bytes.AsSpan(pos + 12, len).ToArray();
            Assert.Equal(Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 12 + len)));
            records.Add(data);
            pos += 12 + len + 4;
        }
        return records;
    }

    static uint Masked(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        crc ^= 0xFFFFFFFF;
        return ((crc >> 15) | (crc << 17)) + 0xA282EAD8;
    }

    /// <summary>Decodes Event.summary (field 5) -> Value (field 1) -> tag (1) + simple_value (2).</summary>
    static Dictionary<string, float> Scalars(byte[] ev)
    {
        var result = new Dictionary<string, float>();
        foreach (var (field, payload) in Fields(ev))
            if (field == 5)
                foreach (var (vf, value) in Fields(payload))
                    if (vf == 1)
                    {
                        string? tag = null; float v = float.NaN;
                        foreach (var (f, p) in Fields(value))
                            if (f == 1) tag = Encoding.UTF8.GetString(p);
                            else if (f == 2) v = BinaryPrimitives.ReadSingleLittleEndian(p);
                        result[tag!] = v;
                    }
        return result;
    }

    static IEnumerable<(int Field, byte[] Payload)> Fields(byte[] msg)
    {
        int pos = 0;
        while (pos < msg.Length)
        {
            ulong key = Varint(msg, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: Varint(msg, ref pos); yield return (field, []); break;
                case 1: yield return (field, msg[pos..(pos + 8)]); pos += 8; break;
                case 5: yield return (field, msg[pos..(pos + 4)]); pos += 4; break;
                case 2:
                    int len = (int)Varint(msg, ref pos);
                    yield return (field, msg[pos..(pos + len)]);
                    pos += len;
                    break;
                default: throw new InvalidDataException($"wire type {wire}");
            }
        }
    }

    static ulong Varint(byte[] b, ref int pos)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte x = b[pos++];
            v |= (ulong)(x & 0x7F) << shift;
            if (x < 0x80) return v;
        }
    }

    [Fact]
    public void ReliabilityBinsAddUpToTheSamplesAndTheEce()
    {
        var acc = new MetricAccumulator(3);
        using var gen = new Generator(0);
        for (int i = 0; i < 4; i++)
        {
            using var logits = randn([64, 3], generator: gen) * 3;
            using var labels = randint(0, 3, [64], generator: gen);
            acc.Add(logits, labels);
        }
        var r = acc.Result([0], [1], [2]);
        var bins = r.Reliability!;
        Assert.Equal(MetricAccumulator.EceBins, bins.Length);
        Assert.Equal(256, bins.Sum(b => b.Count));
        var ece = bins.Where(b => b.Count > 0).Sum(b => Math.Abs(b.Confidence - b.Accuracy) * b.Count / 256.0);
        Assert.Equal(r.Ece, ece, 6);
    }

    public void Dispose()
    {
        set.Dispose();
        dir.Dispose();
    }
}
