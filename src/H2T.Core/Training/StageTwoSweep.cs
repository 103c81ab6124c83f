using System.Diagnostics;
using H2T.Runs;
using H2T.Configuration;
using H2T.Data;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// Stage II for many settings in one pass: one <see cref="StageTwoEngine"/> member per point of the sweep (each rho,
/// times each combination of the swept options), each in its own run folder under the sweep's, then the member that
/// validation selects (sweep.json, selected.ckpt).
/// </summary>
public static class StageTwoSweep
{
    public static SweepResult Run(string stageOneCheckpoint, SweepConfig config, string outDir, Device device,
        ITrainingObserver observer,
        string? dataPathOverride = null, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        var check = config.Check(); // before the data is read
        var start = StageTwoStart.Of(stageOneCheckpoint, dataPathOverride,
            config.ValidationPerClass > 0 ? config.ValidationPerClass : null);
        return Run(start.StageOneCheckpoint, check, start.LoadSplits(), outDir, device, observer, resume, cancel);
    }

    /// <summary>A sweep from a record the caller has not checked: it is checked here, once.</summary>
    public static SweepResult Run(string stageOneCheckpoint, SweepConfig config, DatasetSplits splits, string outDir,
        Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Run(stageOneCheckpoint, config.Check(), splits, outDir, device, observer, resume, cancel);
    }

    /// <summary>A checked sweep (every rho was checked once, by the binder or <see
    /// cref="RunConfigChecks.Check(SweepConfig)"/>).</summary>
    public static SweepResult Run(string stageOneCheckpoint, Checked<SweepConfig> check, DatasetSplits splits,
        string outDir, Device device,
        ITrainingObserver observer, bool resume = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(splits);
        ArgumentNullException.ThrowIfNull(observer);
        var config = check.Value;
        var wall = Stopwatch.StartNew();
        var fromPath = Path.GetFullPath(stageOneCheckpoint);
        var specs = config.Points().OrderBy(p => p.Config.Rho)
            .Select(p => new StageTwoMember(p.Swept, new RunFolder(Path.Combine(outDir, SweepConfig.FolderName(p))),
                p.Config))
            .ToList();
        var plan = new StageTwoPlan(specs);
        // The sweep's folder and every member's: no second process may write any of them.
        var holds = new List<RunFolderLock> { RunFolderLock.Acquire(outDir) };
        try
        {
            foreach (var spec in specs) holds.Add(spec.Run.Lock());
            var outcome = StageTwoEngine.Run(stageOneCheckpoint, plan, splits, device, observer,
                Path.GetFullPath(outDir), resume, cancel);
            return Summarise(specs, outcome, splits, fromPath, config, outDir, wall);
        }
        finally
        {
            foreach (var h in holds) h.Dispose();
        }
    }

    static SweepResult Summarise(List<StageTwoMember> specs, StageTwoEngine.Outcome outcome, DatasetSplits splits,
        string fromPath,
        SweepConfig config, string outDir, Stopwatch wall)
    {

        var rows = specs.Zip(outcome.Metrics, (spec, metrics) =>
            new SweepRow(spec.Config.Rho, spec.Run.Path, metrics.FinalValidation, metrics.Final, metrics.SelectedEpoch,
                metrics.SelectedValidation, metrics.SelectedTest)
            {
                Label = spec.Label, Swept = spec.Swept,
            }).ToList();
        // Ties go to the smaller rho, then to the member listed first.
        var pick = rows.Where(r => r.FinalValidation is not null).OrderByDescending(r =>
            r.FinalValidation!.Top1).ThenBy(r => r.Rho).FirstOrDefault();
        string? selectedCheckpoint = null;
        if (pick is not null)
        {
            selectedCheckpoint = Path.Combine(outDir, "selected.ckpt");
            var source = Path.Combine(pick.RunFolder, "last.ckpt");
            AtomicFile.Write(selectedCheckpoint, s => { using var f = File.OpenRead(source); f.CopyTo(s); });
        }
        var result = new SweepResult
        {
            Rows = rows, SelectedRho = pick?.Rho, SelectedLabel = pick?.Label, SelectedCheckpoint = selectedCheckpoint,
            SweptKeys = [.. specs.SelectMany(s => s.Swept).Select(s => s.Key).Distinct()],
            SelectedBy = pick is null ? "none: no validation split (pass a validation size > 0)" :
                "validation top-1 at the final epoch",
            ValidationNote = outcome.Note, Dataset = splits.Name, From = fromPath, Epochs = config.StageTwo.Epochs,
            WallSeconds = wall.Elapsed.TotalSeconds, TrainSeconds = outcome.TrainSeconds,
                EvalSeconds = outcome.EvalSeconds,
        };
        result.Write(outDir);
        return result;
    }
}
