using System.Text.Json;
using H2T.Runs;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Training;

namespace H2T.Tests.Grid;

/// <summary>h2t grid --local end to end on a tiny Fashion-MNIST-format set: every cell trained for real, finished
/// cells skipped, the table's mean and spread computed again here from the run folders.</summary>
public sealed class GridLocalTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir dir = new();

    /// <summary>2 stage-I methods (CE, CE + mixup) x 2 seeds, a 2-value rho sweep from each.</summary>
    public static string TinyPlan(string name, string outDir, string dataPath, int epochs, string? slurm = null)
    {
        string Method(string method, int mixup) => $"""
              {method}:
                set:
                  dataset: fashion-mnist
                  data_path: {dataPath}
                  imb_factor: 10
                  backbone: resnet8
                  num_epochs: {epochs}
                  batch_size: 32
                  lr: 0.05
                  mixup_alpha: {mixup}

            """;
        return $"""
            name: {name}
            out: {outDir}
            seeds: [0, 1]
            threads: 1
            stage1:

            """ + Method("ce", 0) + Method("mixup", 1) + $"""
            stage2:
              crt:
                rho: [0, 0.5]
                val_per_class: 3
                set:
                  num_epochs: 1
                  batch_size: 32
            {slurm ?? ""}
            """;
    }

    [Fact]
    public void TheLocalGridRunsEveryCellOnceSkipsFinishedOnesAndCollectsMeanAndSpread()
    {
        var outDir = dir.File("runs");
        var plan = dir.Write("tiny.yaml", System.Text.Encoding.UTF8.GetBytes(TinyPlan("tiny", outDir, set.Path, 2)));
        var (rc, output) = CliRunner.Run("grid", plan, "--status");
        Assert.True(rc == 0, output);
        Assert.Contains("pending", output);
        Assert.Contains("waits for stage1:0", output);

        (rc, output) = CliRunner.Run("grid", plan, "--local");
        Assert.True(rc == 0, output);
        Assert.Contains("[8/8] crt:3 mixup -> crt seed 1: h2t sweep", output);
        Assert.Contains("grid tiny: 8 cells run, 0 already done, 0 not finished", output);
        var results = Path.Combine(outDir, "grid", "results.md");
        var table = File.ReadAllText(results);
        Assert.Contains("| ce, stage I | - | 0, 1 |", table);
        Assert.Contains("| mixup -> crt + H2T (rho chosen", table);
        Assert.Contains(" ± ", table);
        var png = File.ReadAllBytes(Path.Combine(outDir, "grid", "results.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);

        // The table's figures, computed again from the run folders: mean and sample standard deviation over seeds.
        var all = Enumerable.Range(0, 2).Select(s => new RunFolder(Path.Combine(outDir, "ce", "own", $"s{s}",
            "stage1")).ReadMetrics().Final!.Top1).ToArray();
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "grid", "results.json"))))
        {
            var row = json.RootElement.EnumerateArray().First(r => r.GetProperty("name").GetString() == "ce, stage I");
            Assert.Equal(all.Average(), row.GetProperty("mean").GetProperty("All").GetDouble(), 9);
            Assert.Equal(Math.Abs(all[0] - all[1]) / Math.Sqrt(2),
                row.GetProperty("spread").GetProperty("All").GetDouble(), 9);
        }

        (rc, output) = CliRunner.Run("grid", plan, "--status");
        Assert.True(rc == 0, output);
        Assert.DoesNotContain("pending", output);
        Assert.Contains("rho 0", output); // a swept cell says which rho validation chose
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(outDir, "ce", "own", "s0", "stage1", "last.ckpt"));
        (rc, output) = CliRunner.Run("grid", plan, "--local");
        Assert.True(rc == 0, output);
        Assert.Contains("grid tiny: 0 cells run, 8 already done", output);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(Path.Combine(outDir, "ce", "own", "s0", "stage1", "last.ckpt")));
        (rc, output) = CliRunner.Run("grid", plan, "--collect");
        Assert.True(rc == 0, output);
        Assert.Equal(table, File.ReadAllText(results));
    }

    public void Dispose()
    {
        dir.Dispose();
        set.Dispose();
    }
}
