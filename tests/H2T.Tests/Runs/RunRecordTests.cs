using System.Text.Json;
using H2T.Runs;
using H2T.Settings;
using H2T.Tests.Data;
using H2T.Tests.Training;
using H2T.Training;
using static TorchSharp.torch;

namespace H2T.Tests.Runs;

/// <summary>A run's config.json and its checkpoints' metadata come from one RunRecord, so they agree.</summary>
public sealed class RunRecordTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    [Fact]
    public void ConfigFileAndCheckpointMetadataSayTheSameOfBothStages()
    {
        var s1 = new RunFolder(Path.Combine(runs.Path, "s1"));
        var one = new StageOneConfig
        {
            Data = set.Config(imbFactor: 2), Backbone = "resnet8", Epochs = 1, EvalEvery = 0,
                Optim = new OptimConfig(BatchSize: 32), Layout = FeatureLayout.Nchw,
        };
        StageOneTrainer.Run(one, s1, CPU, SilentObserver.Instance);
        var s2 = new RunFolder(Path.Combine(runs.Path, "s2"));
        StageTwoTrainer.Run(s1.LastCheckpoint, new StageTwoConfig { Epochs = 1, Rho = 0.5,
            Optim = new OptimConfig(BatchSize: 32) }, s2,
            CPU, SilentObserver.Instance);
        foreach (var (run, stage) in new[] { (s1, "stage1"), (s2, "stage2") })
        {
            var file = JsonDocument.Parse(File.ReadAllText(run.ConfigFile)).RootElement;
            var meta = Checkpoint.ReadMeta(run.LastCheckpoint);
            Assert.Equal(stage, file.GetProperty("stage").GetString());
            Assert.Equal(stage, meta.Stage);
            Assert.Equal(JsonSerializer.Serialize(file.GetProperty("config")),
                JsonSerializer.Serialize(meta.Config!.Value));
            Assert.Equal(file.GetProperty("dataset").GetString(), meta.Dataset);
            Assert.Equal(file.GetProperty("class_counts").EnumerateArray().Select(e => e.GetInt32()), meta.ClassCounts);
            Assert.Equal("fp32", meta.Precision);
        }
        Assert.Equal("NCHW", Checkpoint.ReadMeta(s1.LastCheckpoint).Layout);
        Assert.Equal("channels-last", Checkpoint.ReadMeta(s2.LastCheckpoint).Layout);
        // Stage II records where it started, in both files.
        Assert.Equal(Path.GetFullPath(s1.LastCheckpoint),
            JsonDocument.Parse(File.ReadAllText(s2.ConfigFile)).RootElement.GetProperty("from").GetString());
        Assert.Equal(Path.GetFullPath(s1.LastCheckpoint), Checkpoint.ReadMeta(s2.LastCheckpoint).From);
    }

    public void Dispose()
    {
        runs.Dispose();
        set.Dispose();
    }
}
