using System.Globalization;
using H2T.Runs;

namespace H2T.Grid;

public enum CellState { Pending, Waiting, Partial, Running, Done }

/// <summary>A cell's state as its run folder shows it (nothing else is trusted: a folder is done only when its
/// stage-I metrics.json says completed, or its sweep.json is written).</summary>
public sealed record CellStatus(GridCell Cell, CellState State, string Detail);

public static class GridState
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public static bool IsDone(GridCell cell)
    {
        ArgumentNullException.ThrowIfNull(cell);
        if (cell.Stage == GridStage.Two) return File.Exists(SweepResult.PathIn(cell.Folder));
        // An unreadable metrics.json is not done: the cell's own --resume then names the file and what is wrong.
        try { return new RunFolder(cell.Folder).ReadMetrics().Completed; }
        catch (H2T.Settings.ConfigException) { return false; }
    }

    /// <summary>True while a process holds the folder's run lock (a shared lock cannot be taken beside it).</summary>
    public static bool IsLocked(string folder)
    {
        var file = Path.Combine(folder, RunFolderLock.LockFileName);
        if (!File.Exists(file)) return false;
        try
        {
            using var probe = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return false;
        }
        catch (IOException) { return true; }
    }

    public static CellStatus Of(GridCell cell)
    {
        ArgumentNullException.ThrowIfNull(cell);
        if (IsDone(cell)) return new(cell, CellState.Done,
            cell.Stage == GridStage.One ? Final(cell.Folder) : Sweep(cell));
        if (IsLocked(cell.Folder)) return new(cell, CellState.Running, Progress(cell) ?? "started");
        if (Progress(cell) is { } p) return new(cell, CellState.Partial, p + "; continues with --resume");
        if (cell.After is { } s1 && !IsDone(s1)) return new(cell, CellState.Waiting, $"waits for {s1.Id}");
        return new(cell, CellState.Pending, "");
    }

    static string? Progress(GridCell cell)
    {
        if (cell.Stage == GridStage.One)
        {
            var last = new RunFolder(cell.Folder).LastCheckpoint;
            if (!File.Exists(last)) return null;
            try
            {
                var meta = Checkpoint.ReadMeta(last);
                return string.Create(Ci, $"epoch {meta.Epoch + 1}/{meta.TotalEpochs} checkpointed");
            }
            catch (Exception e) when (e is IOException or InvalidDataException or
                H2T.Settings.ConfigException) { return "checkpoint unreadable"; }
        }
        if (!Directory.Exists(cell.Folder)) return null;
        var members = Directory.GetDirectories(cell.Folder, "rho*");
        return members.Length == 0 ? null : string.Create(Ci, $"{members.Length} rho folders started");
    }

    static string Final(string folder)
    {
        var m = new RunFolder(folder).ReadMetrics();
        return m.Final is { } f ? string.Create(Ci,
            $"All {f.Top1:F2} (tail {f.Tail:F2}) after {m.Epochs.Count} epochs") : "completed";
    }

    static string Sweep(GridCell cell)
    {
        var s = SweepResult.Read(cell.Folder);
        var chosen = s.Rows.Find(r => r.Rho == s.SelectedRho);
        return chosen?.FinalTest is { } t ? string.Create(Ci,
            $"rho {s.SelectedRho:0.###} chosen: All {t.Top1:F2} (tail {t.Tail:F2})") : "swept";
    }
}
