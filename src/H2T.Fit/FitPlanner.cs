using System.Globalization;
using H2T.Data;
using H2T.Models;
using H2T.Runs;
using H2T.Settings;
using H2T.Training;
using TorchSharp;

namespace H2T.Fit;

/// <summary>The sizes of the job the planner budgets for.</summary>
public sealed record FitWorkload(int Train, int Validation, int Test, int Classes, int MedianSide);

/// <summary>
/// Chooses what <c>h2t fit</c> trains within the time limit, by measuring it: each candidate (what the backbone
/// learns, at an image size) runs two short epochs of the real stage-I trainer on a sample of the user's images, in
/// the job's precision, and its speeds give the epochs the remaining budget leaves. Candidates are tried best first
/// (full fine-tune, last stage, SSF, frozen; larger images first) and the first that fits a useful number of epochs
/// is the plan, so a short budget costs few measurements.
/// </summary>
public static class FitPlanner
{
    /// <summary>The training images a measurement uses: four batches, two epochs (the first warms up).</summary>
    const int ProbeBatches = 4;
    /// <summary>The budget kept back for what estimates miss (process start, plots, a slower epoch).</summary>
    const double Reserve = 0.07;

    /// <summary>Fewest and most stage-I epochs per tuning. LIFT trains 10 epochs; a frozen network's head converges
    /// in a few, and more than about 30 adds nothing but time.</summary>
    static (int Min, int Max) EpochRange(FitTuning t) => t switch
    {
        FitTuning.Frozen => (2, 30),
        FitTuning.Ssf => (4, 20),
        FitTuning.LastStage => (4, 15),
        _ => (4, 12),
    };

    /// <summary>The candidates, best first, that the options and backbone allow.</summary>
    public static IReadOnlyList<(FitTuning Tuning, int Size)> Candidates(FitOptions options, string backbone,
        int medianSide)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool resnet = backbone.StartsWith("resnet", StringComparison.Ordinal);
        FitTuning[] tunings = options.Tuning is { } t ? [t]
            : options.Preset == FitPreset.Fast ? [FitTuning.Frozen]
            : resnet ? [FitTuning.Full, FitTuning.LastStage, FitTuning.Ssf, FitTuning.Frozen]
            : [FitTuning.Full, FitTuning.Frozen];
        // 112 px lets an ImageNet network see small images at a scale it knows (docs/experiments.md, sections 8-9);
        // 64 px costs a third of it. Large photos get 224 first, the networks' own size.
        int[] sizes = options.ImageSize is { } s ? [s] : medianSide >= 224 ? [224, 112] : [112, 64];
        return [.. tunings.SelectMany(x => sizes.Select(size => (x, size)))];
    }

    /// <summary>
    /// Measures candidates in order and returns the plan: the first that fits at least its fewest epochs (an
    /// explicit --epochs is taken as given), or, when none fits, the cheapest with a warning in its reasons.
    /// </summary>
    /// <param name="spent">Seconds the job has spent so far (before a resume included).</param>
    public static FitPlan Plan(FitOptions options, FitWorkload work, string backbone, string dataDir, string probeDir,
        Func<double> spent, torch.Device device, Action<string> note, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(work);
        ArgumentNullException.ThrowIfNull(spent);
        ArgumentNullException.ThrowIfNull(note);
        var precision = options.Precision switch
        {
            "fp32" => ComputePrecision.Fp32,
            "bf16" => ComputePrecision.Bf16,
            _ => MixedPrecision.Auto(),
        };
        var why = new List<string>
        {
            options.Precision == "auto"
                ? $"precision {MixedPrecision.Name(precision)}: {MixedPrecision.AutoReason()}"
                : $"precision {MixedPrecision.Name(precision)}: as asked",
        };
        double lr = options.Lr ?? 0.02 * options.BatchSize / 128.0;
        var candidates = new List<FitCandidate>();
        FitCandidate? chosen = null;
        var list = Candidates(options, backbone, work.MedianSide);
        for (int i = 0; i < list.Count && chosen is null; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var (tuning, size) = list[i];
            note($"measuring {FitPlan.TuningName(tuning)} at {FitPlan.SizeName(size)} on this machine ...");
            var speed = Measure(options, tuning, size, precision, lr, backbone, dataDir,
                Path.Combine(probeDir, $"{Name(tuning)}-{size}"), device, cancel);
            var c = Fit(options, work, tuning, size, speed, spent());
            candidates.Add(c);
            note($"  {c.Note}");
            if (c.Fits) chosen = c;
        }
        if (chosen is null)
        {
            chosen = candidates.OrderBy(c => c.EstimatedSeconds).First();
            chosen = chosen with { Epochs = Math.Max(1, options.Epochs ?? EpochRange(chosen.Tuning).Min) };
            why.Add($"no candidate fits {FitKeys.Duration(TimeSpan.FromSeconds(options.TimeLimit.TotalSeconds))} " +
                "with a useful number of epochs: the cheapest runs anyway, over the limit; give more time or " +
                "--preset fast");
        }
        else
            why.Add(options.Tuning is not null && options.ImageSize is not null
                ? $"{FitPlan.TuningName(chosen.Tuning)} at {FitPlan.SizeName(chosen.ImageSize)}: as asked"
                : $"{FitPlan.TuningName(chosen.Tuning)} at {FitPlan.SizeName(chosen.ImageSize)}: the first " +
                  $"candidate, best first, that fits the budget ({candidates.Count} measured)");
        var (stageOne, sweep, finish) = Estimate(work, chosen.Epochs, chosen.TrainImagesPerSecond,
            chosen.EvalImagesPerSecond);
        why.Add(string.Create(CultureInfo.InvariantCulture,
            $"{chosen.Epochs} epochs: {chosen.TrainImagesPerSecond:F0} training images/s measured, " +
            $"{work.Train} training images"));
        why.Add("LIFT's recipe (Shi et al., ICML 2024): a cosine classifier started from class means and the " +
            "logit-adjusted loss, which need no mixup and suit a pretrained network on long-tailed data " +
            "(docs/experiments.md, section 9)");
        return new FitPlan
        {
            Tuning = chosen.Tuning, ImageSize = chosen.ImageSize, Epochs = chosen.Epochs,
            Precision = MixedPrecision.Name(precision), Backbone = backbone, Pretrained = options.Pretrained, Lr = lr,
            BatchSize = options.BatchSize, Rhos = options.Rhos, Seed = options.Seed, StageOneSeconds = stageOne,
            SweepSeconds = sweep, FinishSeconds = finish, BudgetSeconds = options.TimeLimit.TotalSeconds,
            SpentSeconds = spent(), Candidates = candidates, Why = why,
        };
    }

    static string Name(FitTuning t) => FitKeys.Tunings.Names.First(n => FitKeys.Tunings.Parse(n) == t);

    /// <summary>The epochs that fit what is left of the budget after the fixed costs.</summary>
    internal static FitCandidate Fit(FitOptions options, FitWorkload work, FitTuning tuning, int size,
        (double Train, double Eval) speed, double spentSeconds)
    {
        var (min, max) = EpochRange(tuning);
        var (_, sweep, finish) = Estimate(work, 0, speed.Train, speed.Eval);
        double perEpoch = work.Train / speed.Train;
        double fixedCost = StageOneFixed(work, speed.Eval) + sweep + finish;
        double left = options.TimeLimit.TotalSeconds * (1 - Reserve) - spentSeconds - fixedCost;
        int epochs = options.Epochs ?? Math.Min(max, (int)Math.Floor(left / perEpoch));
        double total0 = spentSeconds + fixedCost + epochs * perEpoch;
        // Epochs given: the first candidate they fit in; else the most epochs that fit, at least the fewest useful.
        bool fits = options.Epochs is not null ? total0 <= options.TimeLimit.TotalSeconds * (1 - Reserve)
            : epochs >= min;
        double total = spentSeconds + fixedCost + Math.Max(epochs, min) * perEpoch;
        var note = string.Create(CultureInfo.InvariantCulture,
            $"{FitPlan.TuningName(tuning)} at {FitPlan.SizeName(size)}: {speed.Train:F0} train / {speed.Eval:F0} " +
            $"eval images/s, {perEpoch:F0} s an epoch; ") + (fits
            ? $"{epochs} epochs fit (about {FitKeys.Duration(TimeSpan.FromSeconds(total))} in all)"
            : options.Epochs is not null ? $"{epochs} epochs do not fit"
            : $"only {Math.Max(0, epochs)} epochs fit, fewer than {min}");
        return new FitCandidate(tuning, size, speed.Train, speed.Eval, Math.Max(epochs, 0), total, fits, note);
    }

    /// <summary>Stage I's passes besides its epochs: the class-mean start (one pass over the training images) and the
    /// final evaluation on validation and test.</summary>
    static double StageOneFixed(FitWorkload w, double eval) => (w.Train + w.Validation + w.Test) / eval;

    /// <summary>Seconds of stage I, the sweep and the finish. The sweep runs the frozen network once over every image
    /// (and twice over training images, for the two samplers' views), then trains classifiers on pooled vectors,
    /// which costs little; the finish plots, exports and writes the card.</summary>
    internal static (double StageOne, double Sweep, double Finish) Estimate(FitWorkload w, int epochs, double train,
        double eval) =>
        (epochs * w.Train / train + StageOneFixed(w, eval),
            (2.0 * w.Train + w.Validation + w.Test) / eval + 10 + 0.0005 * w.Train,
            20 + 2000.0 / eval);

    /// <summary>Two short epochs of the real trainer on the probe sample; the second's speeds (the first warms
    /// up).</summary>
    static (double Train, double Eval) Measure(FitOptions options, FitTuning tuning, int size,
        ComputePrecision precision, double lr, string backbone, string dataDir, string folder, torch.Device device,
        CancellationToken cancel)
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, true);
        var plan = new FitPlan
        {
            Tuning = tuning, ImageSize = size, Epochs = 2, Precision = MixedPrecision.Name(precision),
            Backbone = backbone, Pretrained = options.Pretrained, Lr = lr, BatchSize = options.BatchSize,
            Rhos = options.Rhos, Seed = options.Seed, StageOneSeconds = 0, SweepSeconds = 0, FinishSeconds = 0,
            BudgetSeconds = 0, SpentSeconds = 0,
        };
        var config = FitJob.StageOne(plan, dataDir) with { EvalEvery = 1, HeadInit = "random" };
        var metrics = StageOneTrainer.Run(config, new RunFolder(folder), device, SilentObserver.Instance,
            cancel: cancel);
        var last = metrics.Epochs[^1];
        double evaluated = ProbeEvalImages(dataDir);
        double eval = last.EvalSeconds > 0 ? evaluated / last.EvalSeconds : last.ImagesPerSecond * 3;
        try { Directory.Delete(folder, true); }
        catch (IOException) { }
        return (Math.Max(last.ImagesPerSecond, 1e-3), Math.Max(eval, last.ImagesPerSecond));
    }

    /// <summary>The images one evaluation of the probe sample reads (its validation and test images).</summary>
    static int ProbeEvalImages(string dataDir)
    {
        var m = Manifest.Read(dataDir);
        return m.Validation.Count + m.Test.Count;
    }

    /// <summary>The probe sample: <see cref="ProbeBatches"/> batches of training images and a batch each of
    /// validation and test images, every class first, drawn with the job's seed from the job's manifest and written as
    /// one (<see cref="Manifest"/>).</summary>
    public static string WriteProbeData(string dataDir, string probeDir, int batchSize, int seed)
    {
        ArgumentNullException.ThrowIfNull(dataDir);
        var dir = Path.Combine(probeDir, "data");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        var m = Manifest.Read(dataDir);
        var rng = new Random(seed);
        LabelledFiles Sample(LabelledFiles files, int rows)
        {
            var order = Enumerable.Range(0, files.Count).OrderBy(_ => rng.Next()).ToList();
            var firsts = order.GroupBy(i => files.Labels[i]).Select(g => g.First()).ToHashSet();
            var take = firsts.Concat(order.Where(i => !firsts.Contains(i))).Take(Math.Max(rows, firsts.Count))
                .ToArray();
            return new LabelledFiles([.. take.Select(i => files.Paths[i])], [.. take.Select(i => files.Labels[i])]);
        }
        Manifest.Write(dir, m.ClassNames, m.Groups, Sample(m.Train, ProbeBatches * batchSize),
            Sample(m.Validation, batchSize), Sample(m.Test, batchSize));
        return dir;
    }
}
