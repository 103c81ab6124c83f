using System.Diagnostics;
using System.Globalization;
using H2T.Settings;

namespace H2T.Runs;

/// <summary>
/// One writer per run folder. The writer holds an exclusive OS lock on <c>.lock</c> in the folder (.NET takes
/// <c>flock</c> for <see cref="FileShare.None"/> on Unix), so the kernel releases it when the process ends, even by
/// kill -9, and a later <c>--resume</c> simply takes it again. Who holds it is written beside it in
/// <c>.lock.owner</c>, since a locked file cannot be read by the process that is refused.
/// Re-entrant within a process: a demo or sweep that locks a folder its own trainer locks again shares the hold
/// (so two threads of one process are not kept apart: the lock is between processes).
/// </summary>
public sealed class RunFolderLock : IDisposable
{
    public const string LockFileName = ".lock";
    public const string OwnerFileName = ".lock.owner";

    static readonly Dictionary<string, (FileStream Stream, int Holds)> Held = new(StringComparer.Ordinal);

    readonly string folder;
    bool released;

    RunFolderLock(string folder) => this.folder = folder;

    /// <summary>Takes the folder (creating it) or throws <see cref="RunFolderInUseException"/> naming the
    /// holder.</summary>
    public static RunFolderLock Acquire(string folder)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        lock (Held)
        {
            if (Held.TryGetValue(full, out var h))
            {
                Held[full] = (h.Stream, h.Holds + 1);
                return new RunFolderLock(full);
            }
            Directory.CreateDirectory(full);
            FileStream? stream = null;
            // A few tries, 50 ms apart: a reader that only looks (h2t grid --status takes a shared lock for an instant
            // to see whether a writer holds the folder) must not turn a starting writer away.
            for (int attempt = 1; stream is null; attempt++)
            {
                try
                {
                    stream = new FileStream(Path.Combine(full, LockFileName), FileMode.OpenOrCreate,
                        FileAccess.ReadWrite, FileShare.None);
                }
                catch (IOException) when (File.Exists(Path.Combine(full, LockFileName)))
                {
                    if (attempt >= 5) throw new RunFolderInUseException(full, ReadOwner(full));
                    Thread.Sleep(50);
                }
            }
            try
            {
                // A writer killed mid-write (SIGKILL, a lost node) leaves its AtomicFile temporary behind; the folder's
                // one writer is now this process, so any temporary here is an orphan.
                foreach (var orphan in Directory.EnumerateFiles(full, ".*.tmp")) File.Delete(orphan);
                using var self = Process.GetCurrentProcess();
                var owner = string.Create(CultureInfo.InvariantCulture,
                    $"process {Environment.ProcessId} (started " +
                        $"{self.StartTime.ToUniversalTime():yyyy-MM-dd HH:mm:ss}Z)");
                AtomicFile.WriteText(Path.Combine(full, OwnerFileName), owner + Environment.NewLine);
            }
            catch
            {
                stream.Dispose();
                throw;
            }
            Held[full] = (stream, 1);
            return new RunFolderLock(full);
        }
    }

    static string? ReadOwner(string folder)
    {
        try { return File.ReadAllText(Path.Combine(folder, OwnerFileName)).Trim(); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public void Dispose()
    {
        if (released) return;
        released = true;
        lock (Held)
        {
            var (stream, holds) = Held[folder];
            if (holds > 1)
            {
                Held[folder] = (stream, holds - 1);
                return;
            }
            Held.Remove(folder);
            try { File.Delete(Path.Combine(folder, OwnerFileName)); }
            catch (IOException) { }
            stream.Dispose();
        }
    }
}

/// <summary>A second writer for a run folder: exit code 2, the folder untouched.</summary>
public sealed class RunFolderInUseException(string folder, string? owner)
    : ConfigException(
        $"run folder {folder} is in use by {owner ?? "another process"}; wait for it to finish, or choose another " +
            $"--out")
{
    public string Folder { get; } = folder;
}
