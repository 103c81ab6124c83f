using H2T.NativeCompat;
using H2T.Runtime;

namespace H2T.Tests.Runtime;

public sealed class NativeFixTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("h2t-elf-").FullName;

    static string BuiltLibrary()
    {
        var lib = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        Assert.True(File.Exists(lib), $"expected the build to place {lib}");
        return lib;
    }

    [Fact]
    public void BuildOutputCarriesTheFixedLibrary()
    {
        var needs = ElfVersionNeeds.ReadNeeds(BuiltLibrary());
        Assert.Contains(needs, n => n.File == "libstdc++.so.6" && n.Version.StartsWith("GLIBCXX_",
            StringComparison.Ordinal));
        // Whatever this system lacks must be weak now; every other requirement stays strict.
        var report = ElfVersionNeeds.Fix(BuiltLibrary(), dryRun: true);
        Assert.True(report.Loadable, report.ToString());
        Assert.DoesNotContain(report.Messages, m => m.EndsWith("marked weak", StringComparison.Ordinal));
        Assert.Contains(needs, n => !n.IsWeak);
    }

    [Fact]
    public void FixWeakensOnlyTheMissingUnusedVersionAndIsIdempotent()
    {
        var copy = Path.Combine(dir, "libLibTorchSharp.so");
        File.Copy(BuiltLibrary(), copy);
        // Restore the original strict flags on the copy, to see the fix act on a pristine library.
        var weak = ElfVersionNeeds.ReadNeeds(copy).Where(n => n.IsWeak).ToList();
        using (var fs = new FileStream(copy, FileMode.Open, FileAccess.Write))
            foreach (var n in weak)
            {
                fs.Position = n.FlagsOffset;
                var f = (ushort)(n.Flags & ~ElfVersionNeeds.VerFlagWeak);
                fs.WriteByte((byte)f); fs.WriteByte((byte)(f >> 8));
            }
        Assert.All(ElfVersionNeeds.ReadNeeds(copy), n => Assert.False(n.IsWeak));

        // Pretend the system libstdc++ defines every version except one: only that one may be weakened.
        var present = ElfVersionNeeds.ReadNeeds(copy).Where(n => n.File == "libstdc++.so.6").Select(n =>
            n.Version).ToHashSet();
        const string missing = "GLIBCXX_3.4.32";
        Assert.Contains(missing, present);
        var fakeStd = FakeLibraryDefining(present.Where(v => v != missing));
        var first = ElfVersionNeeds.Fix(copy,
            locate: so => so == "libstdc++.so.6" ? fakeStd : ElfVersionNeeds.FindSystemLibrary(so));
        Assert.True(first.Changed, first.ToString());
        var after = ElfVersionNeeds.ReadNeeds(copy);
        Assert.Equal([missing], after.Where(n => n.IsWeak).Select(n => n.Version).ToArray());

        var bytesAfterFirst = File.ReadAllBytes(copy);
        var second = ElfVersionNeeds.Fix(copy,
            locate: so => so == "libstdc++.so.6" ? fakeStd : ElfVersionNeeds.FindSystemLibrary(so));
        Assert.False(second.Changed);
        Assert.Equal(bytesAfterFirst, File.ReadAllBytes(copy));
        Assert.False(File.Exists(copy + ".h2t-tmp"));
    }

    [Fact]
    public void CompatibleSystemIsLeftUntouched()
    {
        var copy = Path.Combine(dir, "lib.so");
        File.Copy(BuiltLibrary(), copy);
        var before = File.ReadAllBytes(copy);
        var all = ElfVersionNeeds.ReadNeeds(copy).Select(n => n.Version);
        var everything = FakeLibraryDefining(all);
        var report = ElfVersionNeeds.Fix(copy, locate: _ => everything);
        Assert.False(report.Changed);
        Assert.Equal(before, File.ReadAllBytes(copy));
    }

    [Fact]
    public void NonElfInputIsRejectedWithTheFileName()
    {
        var bogus = Path.Combine(dir, "not-elf.so");
        File.WriteAllText(bogus, "this is not a shared object, just text that is long enough to have a header........");
        var e = Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.ReadNeeds(bogus));
        Assert.Contains(bogus, e.Message);
        Assert.Contains("magic", e.Message);
    }

    [Fact]
    public void RuntimeReportsTheFixAsApplied()
    {
        var status = TorchRuntime.NativeFix;
        Assert.Equal("applied", status.State);
        Assert.Contains("GLIBCXX_3.4.32", status.Detail);
    }

    /// <summary>Builds a real ELF file that defines the given version names, by copying the system libstdc++'s
    /// layout is overkill; instead we emit a minimal ELF64 with one SHT_GNU_verdef section and its string
    /// table.</summary>
    string FakeLibraryDefining(IEnumerable<string> versions) => MinimalElf.WriteWithVersionDefinitions(Path.Combine(dir,
        $"fake-{Guid.NewGuid():N}.so"), versions);

    public void Dispose() => Directory.Delete(dir, true);
}
