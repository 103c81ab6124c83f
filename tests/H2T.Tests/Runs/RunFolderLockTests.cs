using H2T.Grid;
using H2T.Runs;
using H2T.Tests.Data;

namespace H2T.Tests.Runs;

/// <summary>The run-folder lock against a reader that only looks (h2t grid --status's shared lock).</summary>
public sealed class RunFolderLockTests : IDisposable
{
    readonly TempDir dir = new();

    static FileStream Look(string folder) =>
        // What GridState.IsLocked opens for an instant: a shared lock on the folder's .lock.
        new(Path.Combine(folder, RunFolderLock.LockFileName), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);

    [Fact]
    public async Task AWriterStartingWhileAReaderLooksWaitsForItInsteadOfGivingUp()
    {
        var folder = dir.File("run");
        using (RunFolderLock.Acquire(folder)) Assert.True(GridState.IsLocked(folder));
        Assert.False(GridState.IsLocked(folder));

        var look = Look(folder);
        var released = Task.Run(async () =>
        {
            await Task.Delay(120);
            look.Dispose();
        });
        using (var hold = RunFolderLock.Acquire(folder))
            Assert.True(File.Exists(Path.Combine(folder, RunFolderLock.OwnerFileName)));
        await released;
    }

    [Fact]
    public void ALockHeldLongerThanALookIsRefused()
    {
        var folder = dir.File("busy");
        using (RunFolderLock.Acquire(folder)) { }
        using var held = Look(folder);
        var e = Assert.Throws<RunFolderInUseException>(() => RunFolderLock.Acquire(folder));
        Assert.Equal(Path.GetFullPath(folder), e.Folder);
        Assert.Contains("is in use by", e.Message);
    }

    public void Dispose() => dir.Dispose();
}
