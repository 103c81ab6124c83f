// Shared by the MSBuild task in LibTorchSharpCompat.targets (compiled by RoslynCodeTaskFactory) and by the H2T
// library (runtime check for `h2t info` and a last-resort patch). Keep it dependency-free and plain C#.
//
// Why: libLibTorchSharp.so (TorchSharp 0.107) requires GLIBCXX_3.4.32 from libstdc++.so.6, but only for the
// never-called pin symbol std::ios_base_library_init(). Debian 12's libstdc++ stops at 3.4.30, so the loader
// refuses the library. Marking a version requirement VER_FLG_WEAK makes a missing version non-fatal. We weaken a
// requirement only when (1) the system library lacks that version and (2) no relocation binds a symbol of it, so
// a library that would really call into a missing version still fails loudly.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace H2T.NativeCompat
{
    // CA1051: these two are plain records of what the patcher read and did (C# 7 syntax: the file is also compiled by
    // the build-time tool), so fields, not properties.
#pragma warning disable CA1051
    /// <summary>One version requirement (Elf64_Vernaux) of a shared object.</summary>
    public sealed class VersionNeed
    {
        public string File = "";
        public string Version = "";
        public ushort Flags;
        public ushort Index;
        public long FlagsOffset;
        public bool IsWeak => (Flags & ElfVersionNeeds.VerFlagWeak) != 0;
    }

    /// <summary>What <see cref="ElfVersionNeeds.Fix"/> found and did.</summary>
    public sealed class FixReport
    {
        public string Path = "";
        public bool Changed;
        public bool Loadable = true;
        public List<string> Messages = new List<string>();
        public override string ToString() => string.Join("; ", Messages);
    }
#pragma warning restore CA1051

    public static class ElfVersionNeeds
    {
        public const ushort VerFlagWeak = 0x2;
        static readonly string[] DefaultLibraryDirs = { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
            "/usr/lib64", "/lib", "/usr/lib" };
        const uint ShtRela = 4, ShtDynsym = 11, ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe,
            ShtGnuVersym = 0x6fffffff;

        sealed class Section { public uint Type; public long Offset; public long Size; public uint Link; public uint
            Info; public long EntSize; }

        sealed class Elf
        {
            public readonly byte[] Bytes;
            public readonly List<Section> Sections = new List<Section>();
            public readonly string Path;

            public Elf(string path)
            {
                Path = path;
                Bytes = System.IO.File.ReadAllBytes(path);
                if (Bytes.Length < 64 || Bytes[0] != 0x7f || Bytes[1] != (byte)'E' || Bytes[2] != (byte)'L' ||
                    Bytes[3] != (byte)'F')
                    throw new InvalidDataException($"{path}: not an ELF file (bad magic)");
                if (Bytes[4] != 2 || Bytes[5] != 1)
                    throw new InvalidDataException(
                        $"{path}: expected a 64-bit little-endian ELF file (class {Bytes[4]}, data {Bytes[5]})");
                long shoff = I64(0x28);
                int shentsize = U16(0x3A), shnum = U16(0x3C);
                if (shoff <= 0 || shentsize < 64 || shoff + (long)shnum * shentsize > Bytes.Length)
                    throw new InvalidDataException(
                        $"{path}: section header table out of bounds (offset {shoff}, {shnum} x {shentsize} bytes)");
                for (int i = 0; i < shnum; i++)
                {
                    long o = shoff + (long)i * shentsize;
                    var s = new Section { Type = U32(o + 4), Offset = I64(o + 24), Size = I64(o + 32),
                        Link = U32(o + 40), Info = U32(o + 44), EntSize = I64(o + 56) };
                    if (s.Type != 8 /* NOBITS */ && s.Offset + s.Size > Bytes.Length)
                        throw new InvalidDataException(
                            $"{path}: section {i} (offset {s.Offset}, size {s.Size}) runs past the end of the file");
                    Sections.Add(s);
                }
            }

            public ushort U16(long o) => BitConverter.ToUInt16(Bytes, checked((int)o));
            public uint U32(long o) => BitConverter.ToUInt32(Bytes, checked((int)o));
            public long I64(long o) => BitConverter.ToInt64(Bytes, checked((int)o));
            public ulong U64(long o) => BitConverter.ToUInt64(Bytes, checked((int)o));

            public string Str(uint strtabIndex, uint offset)
            {
                var st = Sections[(int)strtabIndex];
                long start = st.Offset + offset, end = start;
                while (end < st.Offset + st.Size && Bytes[end] != 0) end++;
                return Encoding.ASCII.GetString(Bytes, (int)start, (int)(end - start));
            }

            public Section? First(uint type) => Sections.FirstOrDefault(s => s.Type == type);
        }

        /// <summary>All version requirements (SHT_GNU_verneed) of an ELF shared object.</summary>
        public static List<VersionNeed> ReadNeeds(string path) => ReadNeeds(new Elf(path));

        static List<VersionNeed> ReadNeeds(Elf elf)
        {
            var result = new List<VersionNeed>();
            var vn = elf.First(ShtGnuVerneed);
            if (vn == null) return result;
            long o = vn.Offset;
            for (uint i = 0; i < vn.Info; i++)
            {
                ushort cnt = elf.U16(o + 2);
                string file = elf.Str(vn.Link, elf.U32(o + 4));
                long a = o + elf.U32(o + 8);
                for (int j = 0; j < cnt; j++)
                {
                    result.Add(new VersionNeed { File = file, Flags = elf.U16(a + 4), Index = elf.U16(a + 6),
                        Version = elf.Str(vn.Link, elf.U32(a + 8)), FlagsOffset = a + 4 });
                    uint next = elf.U32(a + 12);
                    if (next == 0) break;
                    a += next;
                }
                uint vnNext = elf.U32(o + 12);
                if (vnNext == 0) break;
                o += vnNext;
            }
            return result;
        }

        /// <summary>Version names a shared object defines (SHT_GNU_verdef).</summary>
        public static HashSet<string> ReadDefinitions(string path)
        {
            var elf = new Elf(path);
            var set = new HashSet<string>(StringComparer.Ordinal);
            var vd = elf.First(ShtGnuVerdef);
            if (vd == null) return set;
            long o = vd.Offset;
            for (uint i = 0; i < vd.Info; i++)
            {
                ushort cnt = elf.U16(o + 6);
                long a = o + elf.U32(o + 12);
                for (int j = 0; j < cnt; j++)
                {
                    set.Add(elf.Str(vd.Link, elf.U32(a)));
                    uint next = elf.U32(a + 4);
                    if (next == 0) break;
                    a += next;
                }
                uint vdNext = elf.U32(o + 16);
                if (vdNext == 0) break;
                o += vdNext;
            }
            return set;
        }

        /// <summary>Names of dynamic symbols whose version index is <paramref name="versionIndex"/>, and whether a
        /// relocation refers to any of them.</summary>
        static (List<string> Symbols, bool Bound) SymbolsOfVersion(Elf elf, ushort versionIndex)
        {
            var dynsym = elf.First(ShtDynsym);
            var versym = elf.First(ShtGnuVersym);
            var names = new List<string>();
            var indexes = new HashSet<ulong>();
            if (dynsym == null || versym == null) return (names, true); // cannot prove it unused: treat as bound
            long count = dynsym.Size / 24;
            for (long k = 0; k < count; k++)
            {
                if ((elf.U16(versym.Offset + 2 * k) & 0x7fff) != versionIndex) continue;
                indexes.Add((ulong)k);
                names.Add(elf.Str(dynsym.Link, elf.U32(dynsym.Offset + 24 * k)));
            }
            bool bound = false;
            foreach (var rela in elf.Sections.Where(s => s.Type == ShtRela && s.EntSize == 24))
            {
                for (long r = rela.Offset; r + 24 <= rela.Offset + rela.Size; r += 24)
                    if (indexes.Contains(elf.U64(r + 8) >> 32)) { bound = true; break; }
                if (bound) break;
            }
            return (names, bound);
        }

        /// <summary>Where the dynamic loader would find <paramref name="soname"/> on this system, or null.</summary>
        public static string? FindSystemLibrary(string soname)
        {
            var dirs = new List<string>();
            var ld = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            if (!string.IsNullOrEmpty(ld)) dirs.AddRange(ld!.Split(':').Where(d => d.Length > 0));
            try
            {
                if (Directory.Exists("/etc/ld.so.conf.d"))
                    foreach (var conf in Directory.GetFiles("/etc/ld.so.conf.d", "*.conf").OrderBy(f => f,
                        StringComparer.Ordinal))
                        // CA1865: the MSBuild inline task compiles this file against netstandard2.0, which has no
                        // StartsWith(char).
#pragma warning disable CA1865
                        dirs.AddRange(System.IO.File.ReadAllLines(conf).Select(l => l.Trim()).Where(l =>
                            l.StartsWith("/", StringComparison.Ordinal)));
#pragma warning restore CA1865
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            dirs.AddRange(DefaultLibraryDirs);
            foreach (var d in dirs)
            {
                var p = System.IO.Path.Combine(d, soname);
                if (System.IO.File.Exists(p)) return p;
            }
            return null;
        }

        /// <summary>
        /// Weakens every version requirement of <paramref name="path"/> that this system cannot satisfy and that no
        /// relocation uses. Idempotent; writes atomically (temp file + rename) and only when something changes.
        /// </summary>
        public static FixReport Fix(string path, bool dryRun = false, Func<string, string?>? locate = null)
        {
            locate ??= FindSystemLibrary;
            var report = new FixReport { Path = path };
            var elf = new Elf(path);
            var defined = new Dictionary<string, HashSet<string>?>(StringComparer.Ordinal);
            var patch = new List<VersionNeed>();
            foreach (var need in ReadNeeds(elf))
            {
                if (!defined.TryGetValue(need.File, out var defs))
                {
                    var lib = locate(need.File);
                    defs = lib == null ? null : ReadDefinitions(lib);
                    defined[need.File] = defs;
                    if (lib == null) report.Messages.Add(
                        $"{need.File} not found on this system; its requirements are left as they are");
                }
                if (defs == null || defs.Contains(need.Version)) continue;
                if (need.IsWeak) { report.Messages.Add($"{need.Version} ({need.File}) already weak"); continue; }
                var (symbols, bound) = SymbolsOfVersion(elf, need.Index);
                if (bound)
                {
                    report.Loadable = false;
                    report.Messages.Add(
                        $"{need.Version} ({need.File}) is missing here and used by a relocation " +
                        $"({string.Join(", ", symbols)}): cannot be fixed by weakening");
                    continue;
                }
                patch.Add(need);
                report.Messages.Add(
                    $"{need.Version} ({need.File}) is missing here; only unreferenced symbol(s) " +
                    $"{string.Join(", ", symbols)} use it: marked weak");
            }
            if (patch.Count == 0)
            {
                if (report.Messages.Count == 0) report.Messages.Add(
                    "every version requirement is met by this system: nothing to do");
                return report;
            }
            if (dryRun) return report;
            // Patch a copy (File.Copy keeps the mode bits, and breaks any hard link into the NuGet cache), then
            // rename it over the original so a reader never sees a half-written library.
            var tmp = path + ".h2t-tmp";
            System.IO.File.Copy(path, tmp, true);
            using (var fs = new FileStream(tmp, FileMode.Open, FileAccess.Write))
            {
                foreach (var need in patch)
                {
                    ushort flags = (ushort)(need.Flags | VerFlagWeak);
                    fs.Position = need.FlagsOffset;
                    fs.WriteByte((byte)(flags & 0xff));
                    fs.WriteByte((byte)(flags >> 8));
                }
            }
            System.IO.File.Replace(tmp, path, null);
            report.Changed = true;
            return report;
        }
    }
}

#if !H2T_LIBRARY
/// <summary>MSBuild entry point (see build/LibTorchSharpCompat.targets): fixes every libLibTorchSharp.so below a
/// build or publish output folder.</summary>
public class FixLibTorchSharp : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public string Directory { get; set; } = "";

    public override bool Execute()
    {
        if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(
            System.Runtime.InteropServices.OSPlatform.Linux))
            return true; // other platforms ship compatible binaries: leave them untouched
        if (!System.IO.Directory.Exists(Directory)) return true;
        foreach (var lib in System.IO.Directory.EnumerateFiles(Directory, "libLibTorchSharp.so",
            System.IO.SearchOption.AllDirectories))
        {
            try
            {
                var report = H2T.NativeCompat.ElfVersionNeeds.Fix(lib);
                var level = report.Changed ? Microsoft.Build.Framework.MessageImportance.High :
                    Microsoft.Build.Framework.MessageImportance.Low;
                Log.LogMessage(level, "h2t native fix: {0}: {1}{2}", lib, report.Changed ? "patched: " : "", report);
                if (!report.Loadable) Log.LogWarning("h2t native fix: {0} will not load on this system: {1}", lib,
                    report);
            }
            catch (System.Exception e)
            {
                Log.LogWarning("h2t native fix: could not check {0}: {1}", lib, e.Message);
            }
        }
        return true;
    }
}
#endif
