using System.Diagnostics;
using H2T.Runs;
using H2T.Training;
using Spectre.Console;

namespace H2T.Cli;

/// <summary>
/// Renders training progress: a live bar per epoch (loss, lr, images/s, ETA) on a terminal, and one line every
/// tenth of an epoch when the output goes to a file (nohup, CI), so logs stay readable.
/// </summary>
public sealed class ConsoleObserver : ITrainingObserver
{
    readonly IAnsiConsole console;
    readonly ProgressContext? progress;
    ProgressTask? task;
    string stage = "";
    int epoch, totalEpochs, lastPrinted = -1;
    readonly Stopwatch epochClock = new();

    ConsoleObserver(IAnsiConsole console, ProgressContext? progress)
    {
        this.console = console;
        this.progress = progress;
    }

    /// <summary>Runs <paramref name="work"/> with an observer suited to this console.</summary>
    public static T Run<T>(IAnsiConsole console, Func<ITrainingObserver, T> work)
    {
        if (!console.Profile.Capabilities.Interactive || !console.Profile.Capabilities.Ansi)
            return work(new ConsoleObserver(console, null));
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => result = work(new ConsoleObserver(console, ctx)));
        return result;
    }

    public void EpochStarted(string stage, int epoch, int totalEpochs, int batches)
    {
        this.stage = stage;
        this.epoch = epoch;
        this.totalEpochs = totalEpochs;
        lastPrinted = -1;
        epochClock.Restart();
        if (progress is not null)
            task = progress.AddTask(Describe(0, 0, 0), maxValue: batches);
    }

    string Describe(double loss, double lr, double ips) =>
        $"{stage} epoch {epoch + 1}/{totalEpochs}  loss {loss:F4}  lr {lr:G3}  {ips:F0} img/s";

    public void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond)
    {
        if (task is not null)
        {
            task.Description = Markup.Escape(Describe(loss, lr, imagesPerSecond));
            task.Value = batch;
            return;
        }
        int tenth = batch * 10 / Math.Max(batches, 1);
        if (tenth == lastPrinted || tenth == 10) return;
        lastPrinted = tenth;
        if (tenth == 0) return;
        double eta = epochClock.Elapsed.TotalSeconds / batch * (batches - batch);
        console.WriteLine($"  {Describe(loss, lr, imagesPerSecond)}  batch {batch}/{batches}  eta {eta:F0}s");
    }

    public void EpochCompleted(EpochRecord record)
    {
        var r = record;
        if (task is not null) task.StopTask();
        if (r.Test is not { } t)
        {
            console.MarkupLineParts(
                $"[bold]{r.Stage} epoch {r.Epoch + 1}/{totalEpochs}[/] loss {r.TrainLoss:F4} | {r.TrainSeconds:F1}s ",
                $"train ({r.ImagesPerSecond:F0} img/s)");
            return;
        }
        console.MarkupLineParts(
            $"[bold]{r.Stage} epoch {r.Epoch + 1}/{totalEpochs}[/] loss {r.TrainLoss:F4} | {r.TrainSeconds:F1}s ",
                $"train ({r.ImagesPerSecond:F0} img/s), {r.EvalSeconds:F1}s eval | test top1 [green]{t.Top1:F2}[/] ",
                $"head {t.Head:F2} medium {t.Medium:F2} tail {t.Tail:F2} ECE {t.Ece:F2}");
    }

    public void Message(string text) => console.MarkupLineInterpolated($"[grey]{text}[/]");
}
