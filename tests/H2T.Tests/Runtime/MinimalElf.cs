using System.Text;

namespace H2T.Tests.Runtime;

/// <summary>Writes tiny but well-formed ELF64 files for the version-requirement tests.</summary>
static class MinimalElf
{
    /// <summary>An ELF64 LE file with a .dynstr and a SHT_GNU_verdef section defining <paramref
    /// name="versions"/>.</summary>
    public static string WriteWithVersionDefinitions(string path, IEnumerable<string> versions)
    {
        var names = versions.ToList();
        var strtab = new MemoryStream();
        strtab.WriteByte(0);
        var offsets = new List<uint>();
        foreach (var n in names)
        {
            offsets.Add((uint)strtab.Length);
            var b = Encoding.ASCII.GetBytes(n);
            strtab.Write(b); strtab.WriteByte(0);
        }
        var verdef = new MemoryStream();
        var w = new BinaryWriter(verdef);
        for (int i = 0; i < names.Count; i++)
        {
            w.Write((ushort)1); w.Write((ushort)0); w.Write((ushort)(i + 2)); w.Write((ushort)1);
            w.Write(0u); w.Write(20u); w.Write(i == names.Count - 1 ? 0u : 28u);
            w.Write(offsets[i]); w.Write(0u);
        }
        long strOff = 64, verOff = strOff + strtab.Length, shOff = (verOff + verdef.Length + 7) / 8 * 8;
        using var f = new BinaryWriter(File.Create(path));
        f.Write(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 });
        f.Write((ushort)3); f.Write((ushort)62); f.Write(1u); f.Write(0L); f.Write(0L); f.Write(shOff);
        f.Write(0u); f.Write((ushort)64); f.Write((ushort)0); f.Write((ushort)0); f.Write((ushort)64); f.Write((
            ushort)3); f.Write((ushort)0);
        f.Write(strtab.ToArray());
        f.Write(verdef.ToArray());
        while (f.BaseStream.Position < shOff) f.Write((byte)0);
        void Section(uint type, long off, long size, uint link, uint info)
        {
            f.Write(0u); f.Write(type); f.Write(0L); f.Write(0L); f.Write(off); f.Write(size); f.Write(link); f.Write(
                info); f.Write(8L); f.Write(0L);
        }
        Section(0, 0, 0, 0, 0);
        Section(3, strOff, strtab.Length, 0, 0);
        Section(0x6ffffffd, verOff, verdef.Length, 1, (uint)names.Count);
        return path;
    }
}
