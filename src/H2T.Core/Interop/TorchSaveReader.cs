using System.Collections;
using System.IO.Compression;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using H2T.Settings;
using Razorvine.Pickle;
using Razorvine.Pickle.Objects;
using static TorchSharp.torch;

namespace H2T.Interop;

/// <summary>
/// Reads any file <c>torch.save</c> writes, in either format: the zip archive (PyTorch 1.6 on: <c>data.pkl</c> plus one
/// entry per storage) and the legacy stream (PyTorch up to 1.5, or <c>_use_new_zipfile_serialization=False</c>:
/// magic, protocol and system-info pickles, the object pickle, then the storages). The pickle library
/// (Razorvine.Pickle) does the unpickling; this class supplies what it lacks through its extension points: storages
/// through <c>persistentLoad</c>, and constructors for tensors, parameters, OrderedDicts, numpy scalars, dtypes and
/// arrays, and pathlib paths. Python builtins come out as .NET values: dict -> Hashtable, list -> ArrayList,
/// tuple -> object[], int -> int/long, float -> double, str -> string, bytes -> byte[].
/// </summary>
public static partial class TorchSaveReader
{
    static readonly BigInteger LegacyMagic = BigInteger.Parse("119547037146038801333356",
        System.Globalization.CultureInfo.InvariantCulture);
    const int LegacyProtocol = 1001;

    /// <summary>The constructor table is process-wide in the pickle library, so reads take turns and set it each
    /// time.</summary>
    static readonly Lock Gate = new();

    /// <summary>Whether the file starts as torch.save writes: a zip archive ('PK') or a pickle stream (0x80).</summary>
    public static bool LooksLikeTorchSave(string path)
    {
        if (!File.Exists(path)) return false;
        using var fs = File.OpenRead(path);
        Span<byte> head = stackalloc byte[2];
        return IsTorchSaveStart(head[..fs.Read(head)]);
    }

    static bool IsTorchSaveStart(ReadOnlySpan<byte> head) =>
        head.Length >= 2 && ((head[0] == (byte)'P' && head[1] == (byte)'K') || head[0] == 0x80);

    public static object Read(string path)
    {
        var root = ReadAny(path);
        if (root is ClassDict cd)
            throw new ConfigException(
                $"{path}: the file pickles a Python object of class '{cd.ClassName}' (for example a whole model, " +
                $"torch.save(model)); " +
                "H2T.NET reads tensors, state dicts and plain containers: save model.state_dict() instead");
        return root;
    }

    static object ReadAny(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: file not found");
        lock (Gate)
        {
            using var registered = Constructors.Register();
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            Span<byte> head = stackalloc byte[4];
            int n = fs.ReadAtLeast(head, 4, throwOnEndOfStream: false);
            fs.Position = 0;
            try
            {
                if (IsTorchSaveStart(head[..n])) return head[0] == (byte)'P' ? ReadZip(path, fs) : ReadLegacy(path, fs);
            }
            catch (Exception e) when (e is PickleException or InvalidCastException or InvalidDataException or
                EndOfStreamException
                                          or IOException or InvalidOperationException or ArgumentException or
                                              IndexOutOfRangeException
                                          or ArithmeticException or FormatException or NullReferenceException)
            {
                throw Explain(path, e);
            }
            throw new ConfigException(
                $"{path}: not a torch.save file: expected a zip archive ('PK') or a pickle (0x80) at offset 0, " +
                $"found {Convert.ToHexString(head[..n])}{(n == 0 ? " (empty file)" : "")}");
        }
    }

    /// <summary>Every tensor in an object graph the reader returned (each once), so a caller can free what it does not
    /// keep.</summary>
    public static IEnumerable<Tensor> TensorsIn(object? node)
    {
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<object?>();
        stack.Push(node);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n is null || !seen.Add(n)) continue;
            switch (n)
            {
                case Tensor t: yield return t; break;
                case Hashtable h: foreach (var v in h.Values) stack.Push(v); break;
                case ArrayList l: foreach (var v in l) stack.Push(v); break;
                case object[] a: foreach (var v in a) stack.Push(v); break;
                case ClassDict cd: foreach (var v in cd.Values) stack.Push(v); break;
            }
        }
    }

    /// <summary>The root object as a dict (every checkpoint and state dict is one).</summary>
    public static Hashtable ReadDict(string path) => Read(path) as Hashtable
        ?? throw new ConfigException(
            $"{path}: the saved object is not a dict (torch.save of a state dict or a checkpoint dict was expected)");

    static object ReadZip(string path, FileStream fs)
    {
        using var zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: true);
        var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal))
            ?? throw new ConfigException($"{path}: a zip file without data.pkl: not written by torch.save");
        var prefix = pkl.FullName[..^"data.pkl".Length];
        if (zip.GetEntry(prefix + "byteorder") is { } order)
        {
            using var r = new System.IO.StreamReader(order.Open());
            var value = r.ReadToEnd().Trim();
            if (value != "little") throw new ConfigException(
                $"{path}: tensors stored in '{value}' byte order; only little-endian files are read");
        }
        var storages = new Storages(key =>
        {
            var entry = zip.GetEntry($"{prefix}data/{key}") ??
                throw new ConfigException($"{path}: storage '{key}' is missing from the archive ({prefix}data/{key})");
            using var s = entry.Open();
            var bytes = new byte[entry.Length];
            s.ReadExactly(bytes);
            return bytes;
        });
        object root;
        using (var s = pkl.Open())
        using (var u = new StorageUnpickler(storages, legacy: false))
            root = u.load(s);
        return storages.Materialise(path, root);
    }

    static object ReadLegacy(string path, FileStream fs)
    {
        object magic;
        using (var u = new Unpickler()) magic = u.load(fs);
        if (!(magic is BigInteger m && m == LegacyMagic))
            throw new ConfigException($"{path}: a pickle, but not a torch.save file (no legacy magic number); " +
                "a plain pickle of a state dict is not read: save it with torch.save");
        using (var u = new Unpickler())
            if (Convert.ToInt32(u.load(fs), System.Globalization.CultureInfo.InvariantCulture) != LegacyProtocol)
                throw new ConfigException($"{path}: legacy torch.save protocol other than {LegacyProtocol}");
        using (var u = new Unpickler())
            if (u.load(fs) is Hashtable info && info["little_endian"] is false)
                throw new ConfigException(
                    $"{path}: written on a big-endian machine; only little-endian files are read");
        var pending = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var storages = new Storages(key => pending.TryGetValue(key, out var b) ? b
            : throw new ConfigException($"{path}: storage '{key}' is referenced but not stored"));
        object root;
        using (var u = new StorageUnpickler(storages, legacy: true)) root = u.load(fs);
        ArrayList keys;
        using (var u = new Unpickler()) keys = u.load(fs) as ArrayList ??
            throw new ConfigException($"{path}: legacy file without its storage key list");
        Span<byte> count = stackalloc byte[8];
        foreach (string key in keys)
        {
            fs.ReadExactly(count);
            long numel = BitConverter.ToInt64(count);
            long size = numel * storages.ElementSize(key);
            if (numel < 0 || size > fs.Length - fs.Position)
                throw new ConfigException(
                    $"{path}: truncated: storage '{key}' needs {size} bytes at offset {fs.Position}, the file has " +
                    $"{fs.Length - fs.Position} left");
            var bytes = new byte[size];
            fs.ReadExactly(bytes);
            pending[key] = bytes;
        }
        return storages.Materialise(path, root);
    }

    [GeneratedRegex(@"\(for ([A-Za-z_][\w.]*)\)")]
    private static partial Regex UnknownClass();

    /// <summary>The pickle library's errors, said in terms of the file.</summary>
    static ConfigException Explain(string path, Exception e)
    {
        static ConfigException InFile(string path, ConfigException c) =>
            c.Message.StartsWith(path, StringComparison.Ordinal) ? c : new ConfigException($"{path}: {c.Message}");
        if (e is ConfigException c) return InFile(path, c);
        var inner = e is PickleException { InnerException: { } ie } ? ie : e;
        if (inner is ConfigException ci) return InFile(path, ci);
        if (UnknownClass().Match(e.Message) is { Success: true } m)
        {
            var name = m.Groups[1].Value;
            return new ConfigException(name is "copyreg._reconstructor" or "__builtin__.object"
                ? $"{path}: the file pickles a Python object by class (for example a whole model, " +
                    $"torch.save(model)); H2T.NET reads tensors, " +
                  "state dicts and plain containers: save model.state_dict() instead"
                : $"{path}: the pickle holds a '{name}' object, which H2T.NET cannot rebuild (it reads tensors, " +
                    $"numpy scalars and arrays, " +
                  "paths and Python's builtin types); save the checkpoint without it");
        }
        if (e is EndOfStreamException or InvalidDataException)
            return new ConfigException($"{path}: truncated or corrupt torch.save file ({e.Message})");
        return new ConfigException(
            $"{path}: cannot read the torch.save file ({inner.GetType().Name}: {inner.Message})");
    }

    /// <summary>Storages by key: their dtype (from the persistent id) and, once read, their bytes.</summary>
    sealed class Storages(Func<string, byte[]> load)
    {
        readonly Dictionary<string, ScalarType> types = new(StringComparer.Ordinal);
        readonly Dictionary<string, byte[]> bytes = new(StringComparer.Ordinal);

        public StorageRef Reference(object[] pid, bool legacy)
        {
            if (pid.Length < 3 || pid[0] as string != "storage")
                throw new ConfigException(pid.Length > 0 && pid[0] as string == "module"
                    ? "the file holds a whole pickled model (torch.save(model)); save model.state_dict() instead"
                    : $"unknown persistent id '{pid.ElementAtOrDefault(0)}' (a storage was expected)");
            var typeName = pid[1] switch
            {
                ClassDictConstructor cd => cd.name,
                string s => s,
                var other => other?.ToString() ?? "",
            };
            var key = Convert.ToString(pid[2], System.Globalization.CultureInfo.InvariantCulture)!;
            var type = StorageType(typeName);
            types[key] = type;
            long offset = 0;
            // Legacy views (PyTorch < 0.4): (view_key, offset, size) into the root storage.
            if (legacy && pid.Length > 5 && pid[5] is object[] view) offset = Convert.ToInt64(view[1],
                System.Globalization.CultureInfo.InvariantCulture);
            return new StorageRef(key, type, offset);
        }

        public long ElementSize(string key) => types.TryGetValue(key, out var t) ? ElementBytes(t)
            : throw new ConfigException($"storage '{key}' is stored but never referenced");

        public Tensor Build(PendingTensor p)
        {
            if (!bytes.TryGetValue(p.Storage.Key, out var raw)) bytes[p.Storage.Key] = raw = load(p.Storage.Key);
            long numel = raw.Length / ElementBytes(p.Storage.Type);
            using var flat = empty(numel, p.Storage.Type);
            if (raw.Length > 0) flat.bytes = raw;
            using var view = flat.as_strided(p.Size, p.Stride, p.Offset + p.Storage.Offset);
            using var dense = view.contiguous();
            var t = dense.clone();
            if (p.RequiresGrad) t.requires_grad_(true);
            return t;
        }

        /// <summary>Replaces every pending tensor in the object graph by a real one (storages are all read by
        /// now).</summary>
        public object Materialise(string path, object root)
        {
            try { return Walk(root); }
            catch (Exception e) when (e is ArgumentException or ExternalException or InvalidOperationException)
            {
                throw new ConfigException(
                    $"{path}: a tensor does not fit its storage ({e.Message}): the file is corrupt");
            }
        }

        object Walk(object node)
        {
            switch (node)
            {
                case PendingTensor p: return Build(p);
                case Hashtable h:
                    foreach (var k in h.Keys.Cast<object>().ToList()) h[k] = Walk(h[k]!);
                    return h;
                case ArrayList list:
                    for (int i = 0; i < list.Count; i++) list[i] = Walk(list[i]!);
                    return list;
                case object[] tuple:
                    for (int i = 0; i < tuple.Length; i++) tuple[i] = Walk(tuple[i]);
                    return tuple;
                case ClassDict cd:
                    foreach (var k in cd.Keys.ToList()) cd[k] = Walk(cd[k]);
                    return cd;
                default: return node;
            }
        }
    }

    sealed class StorageUnpickler(Storages storages, bool legacy) : Unpickler
    {
        protected override object persistentLoad(object pid) =>
            storages.Reference(pid as object[] ??
                throw new ConfigException($"unknown persistent id '{pid}' (a storage tuple was expected)"), legacy);
    }

    internal sealed record StorageRef(string Key, ScalarType Type, long Offset);

    /// <summary>A tensor whose storage may not have been read yet (legacy files store storages after the
    /// pickle).</summary>
    internal sealed record PendingTensor(StorageRef Storage, long Offset, long[] Size, long[] Stride,
        bool RequiresGrad);

    static ScalarType StorageType(string name) => name switch
    {
        "DoubleStorage" => ScalarType.Float64,
        "FloatStorage" => ScalarType.Float32,
        "HalfStorage" => ScalarType.Float16,
        "BFloat16Storage" => ScalarType.BFloat16,
        "LongStorage" => ScalarType.Int64,
        "IntStorage" => ScalarType.Int32,
        "ShortStorage" => ScalarType.Int16,
        "CharStorage" => ScalarType.Int8,
        "ByteStorage" => ScalarType.Byte,
        "BoolStorage" => ScalarType.Bool,
        "ComplexFloatStorage" => ScalarType.ComplexFloat32,
        "ComplexDoubleStorage" => ScalarType.ComplexFloat64,
        _ => throw new ConfigException(
            $"storage type '{name}' is not one H2T.NET reads (float, double, half, bfloat16, integer, bool and " +
            $"complex storages)"),
    };

    static long ElementBytes(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.ComplexFloat64 => 16,
        _ => 1,
    };

    static long[] Longs(object o) => o switch
    {
        object[] a => a.Select(v => Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        ArrayList l => l.Cast<object>().Select(v => Convert.ToInt64(v,
            System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        _ => throw new ConfigException($"expected a shape tuple, found {o?.GetType().Name ?? "None"}"),
    };

    /// <summary>The constructors this reader adds to the pickle library's table, by Python global name.</summary>
    static class Constructors
    {
        static readonly (string Module, string Name, IObjectConstructor Make)[] Table =
        [
            ("torch._utils", "_rebuild_tensor_v2", new RebuildTensor()),
            ("torch._utils", "_rebuild_tensor", new RebuildTensor()),
            ("torch._utils", "_rebuild_parameter", new RebuildParameter()),
            ("torch._utils", "_rebuild_parameter_with_state", new RebuildParameter()),
            ("torch._tensor", "_rebuild_from_type_v2", new RebuildFromType()),
            ("torch._tensor", "_rebuild_from_type", new RebuildFromType()),
            ("collections", "OrderedDict", new Make(_ => new PyOrderedDict())),
            ("numpy", "dtype", new Make(a => new NumpyDtype((string)a[0]))),
            ("numpy.core.multiarray", "scalar", new Make(NumpyDtype.Scalar)),
            ("numpy._core.multiarray", "scalar", new Make(NumpyDtype.Scalar)),
            ("numpy.core.multiarray", "_reconstruct", new Make(_ => new NumpyArray())),
            ("numpy._core.multiarray", "_reconstruct", new Make(_ => new NumpyArray())),
            ("pathlib", "PosixPath", new Make(PathOf)),
            ("pathlib", "WindowsPath", new Make(PathOf)),
            ("pathlib", "PurePosixPath", new Make(PathOf)),
            ("pathlib", "PureWindowsPath", new Make(PathOf)),
            ("pathlib._local", "PosixPath", new Make(PathOf)),
            ("pathlib._local", "WindowsPath", new Make(PathOf)),
        ];

        /// <summary>Puts this reader's constructors in the pickle library's process-wide table until disposed, then
        /// puts back what was there (another user of the library, e.g. TorchSharp.PyBridge, keeps its own).</summary>
        public static IDisposable Register() => new Registration();

        sealed class Registration : IDisposable
        {
            readonly List<(string Key, IObjectConstructor? Previous)> saved = [];

            public Registration()
            {
                var table = LibraryTable.Constructors;
                foreach (var (module, name, make) in Table)
                {
                    var key = $"{module}.{name}";
                    saved.Add((key, table.TryGetValue(key, out var previous) ? previous : null));
                    table[key] = make;
                }
            }

            public void Dispose()
            {
                var table = LibraryTable.Constructors;
                foreach (var (key, previous) in saved)
                    if (previous is null) table.Remove(key);
                    else table[key] = previous;
            }
        }

        /// <summary>The pickle library's constructor table is protected: a subclass may reach it.</summary>
        sealed class LibraryTable : Unpickler
        {
            public static IDictionary<string, IObjectConstructor> Constructors => objectConstructors;
        }

        static string PathOf(object[] parts) => string.Join('/', parts.Select(p => p?.ToString())).Replace("//", "/",
            StringComparison.Ordinal);

        sealed class Make(Func<object[], object> make) : IObjectConstructor
        {
            public object construct(object[] args) => make(args);
        }

        /// <summary>_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
        /// metadata]).</summary>
        sealed class RebuildTensor : IObjectConstructor
        {
            public object construct(object[] args) => new PendingTensor((StorageRef)args[0],
                Convert.ToInt64(args[1], System.Globalization.CultureInfo.InvariantCulture), Longs(args[2]),
                    Longs(args[3]),
                args.Length > 4 && args[4] is true);
        }

        /// <summary>_rebuild_parameter(data, requires_grad, backward_hooks): the data is what a state dict
        /// holds.</summary>
        sealed class RebuildParameter : IObjectConstructor
        {
            public object construct(object[] args) => args[0] is PendingTensor p ? p with { RequiresGrad =
                args.Length > 1 && args[1] is true } : args[0];
        }

        /// <summary>_rebuild_from_type_v2(func, type, args, state): a tensor with Python attributes; the attributes are
        /// dropped.</summary>
        sealed class RebuildFromType : IObjectConstructor
        {
            public object construct(object[] args) => args[0] is IObjectConstructor f && args[2] is object[] inner
                ? f.construct(inner)
                : throw new ConfigException($"a tensor rebuilt by '{args[0]}', which H2T.NET does not know");
        }
    }
}

/// <summary>collections.OrderedDict, as a Hashtable: the pickle library fills it through IDictionary, and in an
/// order of its own (each SETITEMS batch backwards), so the file's key order is not kept.</summary>
#pragma warning disable CA1010 // the pickle library fills dicts through the non-generic IDictionary
public sealed class PyOrderedDict : Hashtable
#pragma warning restore CA1010
{
    /// <summary>BUILD state of a torch state dict: its <c>_metadata</c> (module versions), not needed here.</summary>
    // CA1707 / CA1822: Razorvine.Pickle calls BUILD's __setstate__ by this exact name, on the instance.
#pragma warning disable CA1707, CA1822
    public void __setstate__(Hashtable state) { }
#pragma warning restore CA1707, CA1822
}

/// <summary>numpy.dtype('f8', False, True) with BUILD state (3, '&lt;', ...): the type code and byte order.</summary>
public sealed class NumpyDtype(string code)
{
    public string Code { get; } = code;
    public char ByteOrder { get; private set; } = '|';

#pragma warning disable CA1707 // Razorvine.Pickle calls BUILD's __setstate__ by this exact name
    public void __setstate__(object[] state)
#pragma warning restore CA1707
    {
        if (state.Length > 1 && state[1] is string s && s.Length == 1) ByteOrder = s[0];
    }

    public int ItemSize => Code.Length > 1 && int.TryParse(Code.AsSpan(1),
        System.Globalization.CultureInfo.InvariantCulture, out int n) ? n
        : Code == "?" ? 1 : throw new ConfigException($"numpy dtype '{Code}' is not one H2T.NET reads");

    /// <summary>numpy.core.multiarray.scalar(dtype, bytes): a numpy scalar as double, long or bool.</summary>
    internal static object Scalar(object[] args)
    {
        var dtype = (NumpyDtype)args[0];
        var raw = args[1] as byte[] ??
            throw new ConfigException($"numpy scalar of dtype '{dtype.Code}' without its bytes");
        return dtype.Decode(raw, 0);
    }

    internal object Decode(ReadOnlySpan<byte> raw, int index)
    {
        if (ByteOrder == '>') throw new ConfigException($"big-endian numpy dtype '>{Code}' is not read");
        int n = ItemSize;
        var b = raw.Slice(index * n, n);
        return Code[0] switch
        {
            'f' when n == 8 => BitConverter.ToDouble(b),
            'f' when n == 4 => (double)BitConverter.ToSingle(b),
            'f' when n == 2 => (double)BitConverter.ToHalf(b),
            'i' when n == 8 => BitConverter.ToInt64(b),
            'i' when n == 4 => (long)BitConverter.ToInt32(b),
            'i' when n == 2 => (long)BitConverter.ToInt16(b),
            'i' when n == 1 => (long)(sbyte)b[0],
            'u' when n == 8 => (long)BitConverter.ToUInt64(b),
            'u' when n == 4 => (long)BitConverter.ToUInt32(b),
            'u' when n == 2 => (long)BitConverter.ToUInt16(b),
            'u' when n == 1 => (long)b[0],
            'b' or '?' => b[0] != 0,
            _ => throw new ConfigException($"numpy dtype '{Code}' is not one H2T.NET reads"),
        };
    }
}

/// <summary>numpy.ndarray via _reconstruct + BUILD (version, shape, dtype, is_fortran, raw bytes).</summary>
public sealed class NumpyArray
{
    public long[] Shape { get; private set; } = [];
    public NumpyDtype? Dtype { get; private set; }
    byte[] raw = [];
    bool fortran;

#pragma warning disable CA1707 // Razorvine.Pickle calls BUILD's __setstate__ by this exact name
    public void __setstate__(object[] state)
#pragma warning restore CA1707
    {
        Shape = state[1] is object[] s ? s.Select(v => Convert.ToInt64(v,
            System.Globalization.CultureInfo.InvariantCulture)).ToArray() : [];
        Dtype = state[2] as NumpyDtype;
        fortran = state[3] is true;
        raw = state[4] as byte[] ?? throw new ConfigException("numpy object arrays (dtype=object) are not read");
    }

    public long Count => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The elements in C order, as double, long or bool.</summary>
    public object[] Values()
    {
        var d = Dtype ?? throw new ConfigException("numpy array without a dtype");
        if (fortran && Shape.Length > 1) throw new ConfigException("Fortran-ordered numpy arrays are not read");
        return Enumerable.Range(0, (int)Count).Select(i => d.Decode(raw, i)).ToArray();
    }

    public double[] ToDoubles() => Values().Select(v => Convert.ToDouble(v,
        System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}
