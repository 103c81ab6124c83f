using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using H2T.Runs;

namespace H2T.Reporting;

/// <summary>
/// Scalars in TensorBoard's event-file format, written without TensorFlow: a TFRecord stream (length, masked CRC-32C,
/// payload, masked CRC-32C) of <c>Event</c> protocol buffers (wall_time = 1, step = 2, file_version = 3, summary = 5;
/// Summary.value = 1; Value.tag = 1, Value.simple_value = 2), encoded by hand: a few fields do not justify a
/// protobuf code generator.
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    readonly FileStream stream;

    public TensorBoardWriter(string directory)
    {
        Directory.CreateDirectory(directory);
        Path = System.IO.Path.Combine(directory,
            $"events.out.tfevents.{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}.{Environment.MachineName}." +
            $"{Environment.ProcessId}.h2t");
        stream = new FileStream(Path, FileMode.Create, FileAccess.Write, FileShare.Read);
        WriteRecord(Event(step: 0, fileVersion: "brain.Event:2"));
    }

    public string Path { get; }

    public void Scalar(string tag, double value, long step) => Scalars(step, [(tag, value)]);

    public void Scalars(long step, IEnumerable<(string Tag, double Value)> values)
    {
        var summary = new MemoryStream();
        Span<byte> f = stackalloc byte[4];
        foreach (var (tag, value) in values)
        {
            if (double.IsNaN(value)) continue;
            var v = new MemoryStream();
            Bytes(v, 1, Encoding.UTF8.GetBytes(tag));
            v.WriteByte((2 << 3) | 5); // fixed32
            BinaryPrimitives.WriteSingleLittleEndian(f, (float)value);
            v.Write(f);
            Bytes(summary, 1, v.ToArray());
        }
        WriteRecord(Event(step, summary: summary.ToArray()));
        stream.Flush();
    }

    static byte[] Event(long step, string? fileVersion = null, byte[]? summary = null)
    {
        var e = new MemoryStream();
        e.WriteByte((1 << 3) | 1); // wall_time, fixed64 double
        Span<byte> d = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(d, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        e.Write(d);
        e.WriteByte(2 << 3); // step, varint
        Varint(e, (ulong)step);
        if (fileVersion is not null) Bytes(e, 3, Encoding.UTF8.GetBytes(fileVersion));
        if (summary is not null) Bytes(e, 5, summary);
        return e.ToArray();
    }

    static void Bytes(Stream s, int field, byte[] payload)
    {
        s.WriteByte((byte)((field << 3) | 2));
        Varint(s, (ulong)payload.Length);
        s.Write(payload);
    }

    static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }

    void WriteRecord(byte[] data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc(header[..8]));
        stream.Write(header);
        stream.Write(data);
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc(data));
        stream.Write(footer);
    }

    /// <summary>TFRecord's masked CRC-32C (Castagnoli).</summary>
    public static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        crc ^= 0xFFFFFFFF;
        return ((crc >> 15) | (crc << 17)) + 0xA282EAD8;
    }

    public void Dispose() => stream.Dispose();
}

/// <summary>Forwards to another observer and writes each epoch's figures as TensorBoard scalars (step = epoch +
/// 1).</summary>
public sealed class TensorBoardObserver(ITrainingObserver inner, string directory) : ITrainingObserver, IDisposable
{
    readonly TensorBoardWriter writer = new(directory);

    public string EventFile => writer.Path;

    public void EpochStarted(string stage, int epoch, int totalEpochs, int batches) => inner.EpochStarted(stage, epoch,
        totalEpochs, batches);
    public void BatchCompleted(int batch, int batches, double loss, double lr,
        double imagesPerSecond) => inner.BatchCompleted(batch, batches, loss, lr, imagesPerSecond);
    public void Message(string text) => inner.Message(text);

    public void EpochCompleted(EpochRecord record)
    {
        var values = new List<(string, double)>
        {
            ("train/loss", record.TrainLoss), ("train/lr", record.Lr), ("train/images_per_second",
                record.ImagesPerSecond),
            ("memory/resident_mb", record.ResidentMb),
        };
        if (record.Test is { } t)
            values.AddRange([("test/all", t.Top1), ("test/head", t.Head), ("test/medium", t.Medium), ("test/tail",
                t.Tail), ("test/ece", t.Ece), ("test/nll", t.Nll)]);
        if (record.Validation is { } v)
            values.AddRange([("val/all", v.Top1), ("val/head", v.Head), ("val/medium", v.Medium), ("val/tail",
                v.Tail)]);
        writer.Scalars(record.Epoch + 1, values);
        inner.EpochCompleted(record);
    }

    public void Dispose() => writer.Dispose();
}
