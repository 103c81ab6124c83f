using System.Text.Json;
using H2T.Evaluation;
using H2T.Settings;

namespace H2T.Runs;

/// <summary>
/// A run's folder: config.json (resolved config), log.txt, metrics.json (per epoch + final), last.ckpt, best.ckpt,
/// final-eval.json (full evaluation incl. per-class accuracy and confusion matrix).
/// </summary>
public sealed class RunFolder
{
    /// <summary>Names the folder; it is created by the first write, so a run that fails validation leaves
    /// nothing.</summary>
    public RunFolder(string path) => Path = System.IO.Path.GetFullPath(path);

    public string Path { get; }
    public string ConfigFile => System.IO.Path.Combine(Path, "config.json");
    public string LogFile => System.IO.Path.Combine(Path, "log.txt");
    public string MetricsFile => System.IO.Path.Combine(Path, "metrics.json");
    public string LastCheckpoint => System.IO.Path.Combine(Path, "last.ckpt");
    public string BestCheckpoint => System.IO.Path.Combine(Path, "best.ckpt");
    public string FinalEvalFile => System.IO.Path.Combine(Path, "final-eval.json");
    /// <summary>The final epoch's per-image test predictions (labels, predicted classes, confidences).</summary>
    public string TestPredictionsFile => System.IO.Path.Combine(Path, "test-predictions.json");

    public ImagePredictions? ReadTestPredictions()
    {
        if (!File.Exists(TestPredictionsFile)) return null;
        try { return JsonSerializer.Deserialize<ImagePredictions>(File.ReadAllText(TestPredictionsFile),
            AtomicFile.Json); }
        catch (JsonException e) { throw new ConfigException(
            $"{TestPredictionsFile}: unreadable predictions ({e.Message})"); }
    }

    /// <summary>Makes this process the folder's one writer until disposed (see <see cref="RunFolderLock"/>).</summary>
    public RunFolderLock Lock() => RunFolderLock.Acquire(Path);

    public void Log(string line)
    {
        Directory.CreateDirectory(Path);
        File.AppendAllText(LogFile, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}Z {line}{Environment.NewLine}");
    }

    public RunMetrics ReadMetrics()
    {
        if (!File.Exists(MetricsFile)) return new RunMetrics();
        try
        {
            return JsonSerializer.Deserialize<RunMetrics>(File.ReadAllText(MetricsFile),
                AtomicFile.Json) ?? new RunMetrics();
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{MetricsFile}: unreadable metrics ({e.Message}); move it away to start over");
        }
    }

    public void WriteMetrics(RunMetrics metrics) => AtomicFile.WriteJson(MetricsFile, metrics);

    /// <summary>final-eval.json (per-class accuracy, confusion, reliability), or null before the run's last
    /// epoch.</summary>
    public EvaluationResult? ReadFinalEval()
    {
        if (!File.Exists(FinalEvalFile)) return null;
        try { return JsonSerializer.Deserialize<EvaluationResult>(File.ReadAllText(FinalEvalFile), AtomicFile.Json); }
        catch (JsonException e) { throw new ConfigException($"{FinalEvalFile}: unreadable evaluation ({e.Message})"); }
    }
}
