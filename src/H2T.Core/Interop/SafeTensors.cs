using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using H2T.Data;
using static TorchSharp.torch;

namespace H2T.Interop;

/// <summary>
/// Reads a safetensors file (the Hugging Face hub's <c>model.safetensors</c>): an 8-byte little-endian header length,
/// a JSON header mapping each tensor name to its dtype, shape and byte range (plus an optional <c>__metadata__</c>
/// object of strings), then the raw little-endian data. Floating-point tensors come back as float32.
/// </summary>
public static class SafeTensors
{
    /// <summary>Whether the file starts like a safetensors file: a plausible header length, then '{'.</summary>
    public static bool LooksLikeSafeTensors(string path)
    {
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return true;
        using var s = File.OpenRead(path);
        Span<byte> head = stackalloc byte[9];
        if (s.Read(head) < 9) return false;
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(head);
        return n > 1 && n < 100_000_000 && head[8] == (byte)'{';
    }

    /// <summary>The tensor names in the file's JSON header, without reading any tensor data.</summary>
    public static IReadOnlyList<string> TensorNames(string path)
    {
        using var s = File.OpenRead(path);
        using var doc = Header(path, s, out _);
        return [.. doc.RootElement.EnumerateObject().Select(e => e.Name).Where(n => n != "__metadata__")];
    }

    /// <summary>The JSON header of the safetensors stream <paramref name="s"/> (positioned at its start), checked
    /// against the file's length; <paramref name="dataStart"/> is where the tensor bytes begin.</summary>
    static JsonDocument Header(string path, Stream s, out long dataStart)
    {
        long length = s.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (s.Read(prefix) < 8) throw new DataFormatException(
            $"{path}: not a safetensors file (shorter than its 8-byte header length)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength < 2 || headerLength > (ulong)(length - 8))
            throw new DataFormatException(
                $"{path}: not a safetensors file (header length {headerLength} in a {length}-byte file)");
        var header = new byte[headerLength];
        s.ReadExactly(header);
        dataStart = 8 + (long)headerLength;
        try { return JsonDocument.Parse(header); }
        catch (JsonException e) { throw new DataFormatException($"{path}: safetensors header is not JSON ({e.Message})",
            e); }
    }

    public static (Dictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        using var s = File.OpenRead(path);
        long length = s.Length;
        var doc = Header(path, s, out long dataStart);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        using (doc)
        {
            try
            {
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__")
                    {
                        foreach (var m in entry.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                        continue;
                    }
                    var what = $"{path}: tensor '{entry.Name}'";
                    var dtype = entry.Value.GetProperty("dtype").GetString();
                    var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                    var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d =>
                        d.GetInt64()).ToArray();
                    if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || dataStart +
                        offsets[1] > length)
                        throw new DataFormatException(
                            $"{what}: data_offsets [{string.Join(", ", offsets)}] outside the file's " +
                            $"{length - dataStart} data bytes (truncated?)");
                    long count = shape.Aggregate(1L, (a, b) => a * b);
                    int size = dtype switch { "F32" or "I32" => 4, "F16" or "BF16" or "I16" => 2, "F64" or "I64" => 8,
                        "U8" or "I8" or "BOOL" => 1,
                        _ => throw new DataFormatException(
                            $"{what}: dtype {dtype} is not read (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)") };
                    if (offsets[1] - offsets[0] != count * size)
                        throw new DataFormatException(
                            $"{what}: {offsets[1] - offsets[0]} bytes for shape [{string.Join(", ", shape)}] of " +
                            $"{dtype}, expected {count * size}");
                    var bytes = new byte[offsets[1] - offsets[0]];
                    s.Position = dataStart + offsets[0];
                    s.ReadExactly(bytes);
                    tensors[entry.Name] = ToTensor(bytes, dtype!, shape);
                }
            }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                foreach (var t in tensors.Values) t.Dispose();
                throw new DataFormatException(
                    $"{path}: safetensors header entry is malformed ({e.Message}): expected dtype, shape and " +
                    $"data_offsets", e);
            }
            catch
            {
                foreach (var t in tensors.Values) t.Dispose();
                throw;
            }
        }
        return (tensors, metadata);
    }

    /// <summary>The bytes reinterpreted as their dtype (little-endian, as this machine is); floating point as float32,
    /// which every module here holds.</summary>
    static Tensor ToTensor(byte[] bytes, string dtype, long[] shape)
    {
        ReadOnlySpan<byte> b = bytes;
        switch (dtype)
        {
            case "F32": return tensor(MemoryMarshal.Cast<byte, float>(b).ToArray(), shape);
            case "F64": return tensor(MemoryMarshal.Cast<byte, double>(b).ToArray().Select(v => (float)v).ToArray(),
                shape);
            case "F16": return tensor(MemoryMarshal.Cast<byte, Half>(b).ToArray().Select(v => (float)v).ToArray(),
                shape);
            case "BF16": return tensor(MemoryMarshal.Cast<byte,
                ushort>(b).ToArray().Select(v => BitConverter.Int32BitsToSingle(v << 16)).ToArray(), shape);
            case "I64": return tensor(MemoryMarshal.Cast<byte, long>(b).ToArray(), shape);
            case "I32": return tensor(MemoryMarshal.Cast<byte, int>(b).ToArray(), shape);
            case "I16": return tensor(MemoryMarshal.Cast<byte, short>(b).ToArray(), shape);
            case "I8": return tensor(MemoryMarshal.Cast<byte, sbyte>(b).ToArray(), shape);
            case "U8": return tensor(bytes, shape);
            default: return tensor(bytes.Select(v => v != 0).ToArray(), shape);
        }
    }
}
