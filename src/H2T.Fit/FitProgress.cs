using H2T.Runs;

namespace H2T.Fit;

/// <summary>Where the whole job is: its step, the fraction done (0-1), the time spent, the estimated time left and
/// the budget.</summary>
public sealed record FitProgress(string Step, double Fraction, TimeSpan Elapsed, TimeSpan Remaining, TimeSpan Budget);

/// <summary>What a fit job tells its caller: lines to print, and progress for one bar.</summary>
public interface IFitObserver
{
    void Message(string text);
    void Progress(FitProgress progress);
}

/// <summary>An observer that prints nothing (library use).</summary>
public sealed class SilentFitObserver : IFitObserver
{
    public static readonly SilentFitObserver Instance = new();
    public void Message(string text) { }
    public void Progress(FitProgress progress) { }
}

/// <summary>
/// One bar for the job. Each step has an estimated cost in seconds (from the plan); the fraction done is the sum of
/// finished steps' estimates plus the running step's own fraction of its estimate, over the total. The time left
/// is the estimates still to run, scaled by how fast the job has gone against its estimates so far.
/// </summary>
public sealed class FitTracker(IFitObserver observer, TimeSpan budget, TimeSpan spentBefore)
{
    readonly System.Diagnostics.Stopwatch clock = System.Diagnostics.Stopwatch.StartNew();
    readonly List<(string Step, double Seconds)> steps = [];
    int current = -1;
    double currentFraction;
    double stepStartedAt;

    public TimeSpan Elapsed => spentBefore + clock.Elapsed;

    /// <summary>Sets the steps still to come with their estimated seconds (called again once the plan is
    /// known).</summary>
    public void Steps(IEnumerable<(string Step, double Seconds)> plan)
    {
        // The steps up to the running one stay (its estimate too), then the new estimates of those to come.
        var done = current < 0 ? [] : steps.Take(current + 1).ToList();
        steps.Clear();
        steps.AddRange(done);
        steps.AddRange(plan);
    }

    /// <summary>Starts the named step (it must be one of <see cref="Steps"/>).</summary>
    public void Begin(string step)
    {
        int i = steps.FindIndex(Math.Max(0, current), s => s.Step == step);
        if (i < 0) throw new InvalidOperationException($"fit step '{step}' is not in the plan");
        current = i;
        currentFraction = 0;
        stepStartedAt = Elapsed.TotalSeconds;
        Report();
    }

    /// <summary>The running step's own progress, 0-1.</summary>
    public void At(double fraction)
    {
        lock (steps)
        {
            currentFraction = Math.Clamp(fraction, 0, 1);
            Report();
        }
    }

    void Report()
    {
        double total = steps.Sum(s => s.Seconds);
        double before = steps.Take(current).Sum(s => s.Seconds);
        double here = current >= 0 && current < steps.Count ? steps[current].Seconds : 0;
        double done = before + here * currentFraction;
        double elapsed = Elapsed.TotalSeconds;
        // Speed against the estimates: the running step's when it has gone far enough to tell, else the job's.
        double stepSpent = elapsed - stepStartedAt;
        double pace = currentFraction > 0.05 && here > 0 ? stepSpent / (here * currentFraction)
            : done > 0 ? elapsed / done : 1;
        pace = Math.Clamp(pace, 0.25, 4);
        double left = (total - done) * pace;
        observer.Progress(new FitProgress(current >= 0 ? steps[current].Step : "", total > 0 ? done / total : 0,
            Elapsed, TimeSpan.FromSeconds(Math.Max(0, left)), budget));
    }

    /// <summary>A trainer's observer that moves the bar through the running step by epochs and batches, and passes
    /// the trainer's messages on.</summary>
    public ITrainingObserver Training() => new TrainingProgress(this, observer);

    sealed class TrainingProgress(FitTracker tracker, IFitObserver observer) : ITrainingObserver
    {
        int epoch, epochs = 1;

        public void EpochStarted(string stage, int epoch, int totalEpochs, int batches)
        {
            this.epoch = epoch;
            epochs = Math.Max(1, totalEpochs);
            tracker.At((double)epoch / epochs);
        }

        public void BatchCompleted(int batch, int batches, double loss, double lr, double imagesPerSecond) =>
            tracker.At((epoch + (double)batch / Math.Max(1, batches)) / epochs);

        public void EpochCompleted(EpochRecord record) => tracker.At((record.Epoch + 1.0) / epochs);

        public void Message(string text) => observer.Message(text);
    }
}
