using System.Globalization;
using H2T.Configuration;
using H2T.Data;
using H2T.Fusion;
using H2T.Runs;
using TorchSharp;

namespace H2T.Training;

/// <summary>What one run of a bound config produced: a single run's metrics (stage I, stage II) or a sweep's
/// table.</summary>
public sealed record ExperimentOutcome(RunMetrics? Metrics, SweepResult? Sweep);

/// <summary>
/// The library's entry point of a training run from a bound config (<see cref="ReferenceConfig.Bind"/>): h2t stage1,
/// stage2 and sweep call it, and so does each cell of h2t grid, with the config its plan bound. <see cref="Prepare"/>
/// names the run folder (the one given, else the mode's default) and, in stage II, finds where the run starts;
/// <see cref="Run"/> loads the data and trains into that folder.
/// </summary>
public sealed record ExperimentRun
{
    public required ExperimentConfig Experiment { get; init; }
    /// <summary>The <c>--config</c> file the config was read from, if any.</summary>
    public string? ConfigFile { get; init; }
    /// <summary>The run folder (a sweep's: the folder of its members), a full path.</summary>
    public required string Folder { get; init; }
    /// <summary>Continue the run in <see cref="Folder"/> from its last checkpoint.</summary>
    public bool Resume { get; init; }
    /// <summary>Stage II and sweeps: the stage-I checkpoint and its data.</summary>
    public StageTwoStart? Start { get; init; }

    /// <summary>
    /// The run of <paramref name="experiment"/> in its mode: into <paramref name="outDir"/>, or by default
    /// runs/&lt;name&gt; with a config file, else a stage-I run's name from its settings, a stage-II run beside
    /// <paramref name="from"/> (the stage-I checkpoint; with a config, its 'resume' when not given). A stage-2
    /// config's PyTorch checkpoint is imported into the run folder first (<paramref name="note"/> says so).
    /// </summary>
    public static ExperimentRun Prepare(ExperimentConfig experiment, string? configFile, string? from, string? outDir,
        bool resume, Action<string>? note = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        var ci = CultureInfo.InvariantCulture;
        string Named(string file) => Path.Combine("runs", experiment.Name ?? Path.GetFileNameWithoutExtension(file));
        switch (experiment.Mode)
        {
            case StageMode.StageOne:
            {
                var c = experiment.CheckedStageOne!.Value;
                var name = string.Create(ci, $"stage1-{c.Data.Dataset}-if{c.Data.ImbFactor:0.##}-{c.Loss.Type}")
                    + string.Create(ci, $"-mixup{c.MixupAlpha:0.##}-e{c.Epochs}-s{c.Seed}");
                var folder = outDir ?? (configFile is { } file ? Named(file) : Path.Combine("runs", name));
                // The reference's 'resume' names the checkpoint to continue from; here a run continues from its own
                // folder.
                return new() { Experiment = experiment, ConfigFile = configFile, Folder = Path.GetFullPath(folder),
                    Resume = resume || experiment.Resume is not null };
            }
            case StageMode.StageTwo:
            {
                var c = experiment.CheckedStageTwo!.Value;
                if (configFile is { } file)
                {
                    var folder = Path.GetFullPath(outDir ?? Named(file));
                    // A PyTorch stage-I checkpoint (the reference's .pth.tar) is imported into the run folder first.
                    var start = StageTwoStart.FromConfig(experiment, file, from, null,
                        experiment.ValidationPerClass ?? 0, Path.Combine(folder, "imported-stage1.ckpt"), note);
                    return new()
                    {
                        Experiment = experiment, ConfigFile = file, Folder = folder, Resume = resume, Start = start,
                    };
                }
                var method = c.Fusion == StageTwoMethods.H2T ? string.Create(ci, $"rho{c.Rho:0.##}") : c.Fusion;
                // Default: inside the stage-I run, so stage-II runs of different backbones never share a folder.
                var inside = outDir ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(from ?? ""))!,
                    string.Create(ci, $"stage2-{method}-{c.Loss.Type}-e{c.Epochs}-s{c.Seed}"));
                var fromCheckpoint = StageTwoStart.FromCheckpoint(from ?? "", experiment.Data.DataPath,
                    experiment.ValidationPerClass is > 0 and var v ? v : null);
                return new()
                {
                    Experiment = experiment, Folder = Path.GetFullPath(inside), Resume = resume, Start = fromCheckpoint,
                };
            }
            default:
            {
                var c = experiment.CheckedSweep!.Value;
                var start = configFile is { } file
                    ? StageTwoStart.FromConfig(experiment, file, from, null, c.ValidationPerClass)
                    : StageTwoStart.FromCheckpoint(from ?? "", experiment.Data.DataPath,
                        c.ValidationPerClass > 0 ? c.ValidationPerClass : null);
                var two = c.StageTwo;
                var folder = outDir ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(start.StageOneCheckpoint))!,
                    string.Create(ci, $"sweep-{two.Loss.Type}-e{two.Epochs}-s{two.Seed}"));
                return new()
                {
                    Experiment = experiment, ConfigFile = configFile, Folder = Path.GetFullPath(folder),
                    Resume = resume, Start = start,
                };
            }
        }
    }

    /// <summary>Loads the data and trains the run into <see cref="Folder"/> (resumed when asked), reporting to
    /// <paramref name="observer"/>; stops between batches when <paramref name="cancel"/> is cancelled.</summary>
    public ExperimentOutcome Run(torch.Device device, ITrainingObserver observer, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(observer);
        switch (Experiment.Mode)
        {
            case StageMode.StageOne:
            {
                var check = Experiment.CheckedStageOne!;
                var splits = DatasetCatalog.Load(check.Value.Data);
                Experiment.CheckNumClasses(splits.NumClasses, splits.Name);
                var run = new RunFolder(Folder);
                return new(StageOneTrainer.Run(check, splits, run, device, observer, Resume, cancel), null);
            }
            case StageMode.StageTwo:
                return new(StageTwoTrainer.Run(Start!.StageOneCheckpoint, Experiment.CheckedStageTwo!,
                    Start.LoadSplits(), new RunFolder(Folder), device, observer, Resume, cancel), null);
            default:
                return new(null, StageTwoSweep.Run(Start!.StageOneCheckpoint, Experiment.CheckedSweep!,
                    Start.LoadSplits(), Folder, device, observer, Resume, cancel));
        }
    }
}
