using H2T.Configuration;
using H2T.Fusion;
using H2T.Runs;
using H2T.Training;
using Spectre.Console;

namespace H2T.Cli.Commands;

/// <summary>What stage1, stage2 and sweep (and each cell of <c>h2t grid</c>) print around the library's entry point,
/// <see cref="ExperimentRun"/>: the run's header line, its progress, then its table and reports.</summary>
internal static class TrainingRuns
{
    /// <summary>A training command: bind the flags Spectre parsed (with the file and overrides), prepare the run,
    /// train it.</summary>
    public static int Execute(IAnsiConsole console, StageMode mode, GlobalSettings settings, string? config,
        IReadOnlyList<string> overrides, string? from, string? outDir, bool resume, bool tensorboard,
        CancellationToken cancel)
    {
        var experiment = ConfigSupport.Bind(mode, settings, config, overrides);
        ConfigSupport.PrintIgnored(console, experiment, config);
        var device = CommandSupport.Start(settings.Threads, settings.Device);
        void Note(string line) => console.MarkupLineInterpolated($"{line}");
        var run = CommandSupport.Train(() => ExperimentRun.Prepare(experiment, config, from, outDir, resume, Note));
        Train(console, run, o => run.Run(device, o, cancel), tensorboard);
        return 0;
    }

    /// <summary>Trains a prepared run on the console (<paramref name="train"/> calls <see cref="ExperimentRun.Run"/>):
    /// its header, its progress (and TensorBoard events when asked), its results.</summary>
    public static ExperimentOutcome Train(IAnsiConsole console, ExperimentRun run,
        Func<ITrainingObserver, ExperimentOutcome> train, bool tensorboard = false)
    {
        ArgumentNullException.ThrowIfNull(run);
        var (title, text) = Header(run);
        console.MarkupLine($"[bold]{title}[/]{Markup.Escape(text)}");
        var outcome = CommandSupport.Train(() => CommandSupport.Observed(console, run.Folder, tensorboard, train));
        Finish(console, run, outcome);
        return outcome;
    }

    /// <summary>The header line: its bold title, then the rest (plain text).</summary>
    static (string Title, string Text) Header(ExperimentRun run)
    {
        var experiment = run.Experiment;
        switch (experiment.Mode)
        {
            case StageMode.StageOne:
            {
                var c = experiment.CheckedStageOne!.Value;
                var file = run.ConfigFile is null ? "" : $" from {run.ConfigFile}";
                return ("stage I", $"{file}: {c.Data.Dataset} IF={c.Data.ImbFactor} {c.Backbone} loss {c.Loss.Type} "
                    + $"mixup {c.MixupAlpha} {c.Epochs} epochs -> {run.Folder}");
            }
            case StageMode.StageTwo:
            {
                var c = experiment.CheckedStageTwo!.Value;
                var method = c.Fusion == StageTwoMethods.H2T ? $"rho {c.Rho}" : $"fusion {c.Fusion}";
                return ("stage II", $" from {run.Start!.StageOneCheckpoint}: {method}, tail sampler {c.TailSampler}, "
                    + $"head sampler {c.HeadSampler}, shift-BN {(c.ShiftBn ? "on" : "off")}, {c.Epochs} epochs "
                    + $"-> {run.Folder}");
            }
            default:
            {
                var c = experiment.CheckedSweep!.Value;
                var rhos = $"rho {string.Join(", ", c.Rhos)}";
                var what = c.Options.Count == 0 ? rhos
                    : string.Join(" x ", (c.Rhos.Length > 1 ? [rhos] : Array.Empty<string>())
                        .Concat(c.Options.Select(o => $"{o.Key} {string.Join(", ", o.Values.Select(v => v.Text))}")));
                return ("stage II sweep", $" from {run.Start!.StageOneCheckpoint}: {what} ({c.Points().Count} members) "
                    + $"in one pass, {c.StageTwo.Epochs} epochs -> {run.Folder}");
            }
        }
    }

    static void Finish(IAnsiConsole console, ExperimentRun run, ExperimentOutcome outcome)
    {
        if (outcome.Sweep is { } sweep)
        {
            CommandSupport.WriteSweep(console, sweep, run.Folder);
            return;
        }
        var label = run.Experiment.CheckedStageTwo?.Value is { } two
            ? two.Fusion == StageTwoMethods.H2T ? $"stage II rho={two.Rho}" : $"stage II {two.Fusion}"
            : "stage I";
        CommandSupport.Finish(console, new RunFolder(run.Folder), label, outcome.Metrics!);
    }
}
