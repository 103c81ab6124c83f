using System.Text.Json;
using H2T.Runs;
using H2T.Cli;
using H2T.Settings;
using H2T.Training;
using H2T.Tests.Data;
using H2T.Tests.Training;

namespace H2T.Tests.Cli;

/// <summary>--config, key=value overrides, flags on top, and the PyTorch import/export commands, end to end.</summary>
public sealed class ConfigCommandsTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir dir = new();

    static (int Rc, string Output) Run(params string[] args) => CliRunner.Run(args);

    static string Fixture(string name) => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Interop",
        "Fixtures", name);

    string Yaml(string name, string text)
    {
        var path = Path.Combine(dir.Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    string StageOneYaml() => Yaml("s1.yaml", $"""
        name: tiny_stage1
        mode: 'stage1'
        dataset: 'fashion-mnist'
        data_path: '{set.Path}'
        num_classes: 10
        imb_factor: 0.1
        backbone: 'resnet8'
        lr: 0.05
        batch_size: 64
        weight_decay: 2e-4
        num_epochs: 5
        momentum: 0.9
        mixup: True
        alpha: 1.0
        workers: 4
        """);

    [Fact]
    public void StageOneRunsFromAConfigWithOverridesAndFlagsOnTop()
    {
        var out1 = Path.Combine(dir.Path, "s1");
        var (rc, output) = Run("stage1", "--config", StageOneYaml(), "num_epochs=1", "mixup=False", "--batch-size",
            "32", "--out", out1, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("accepted without effect here: workers", output);
        var meta = Checkpoint.ReadMeta(Path.Combine(out1, "last.ckpt"));
        Assert.Equal(1, meta.TotalEpochs);           // the override beat the file's 5
        var config = meta.Config!.Value.Deserialize<StageOneConfig>(AtomicFile.Json)!;
        Assert.Equal(32, config.Optim.BatchSize);    // the flag beat the file's 64
        Assert.Equal(0, config.MixupAlpha);
        Assert.Equal(10, config.Data.ImbFactor, 9);  // 0.1 = n_min / n_max
        Assert.Equal("resnet8", meta.Architecture);

        // Stage II from that checkpoint with a config that disagrees with it: refused, naming the key and line.
        var s2 = Yaml("s2-mismatch.yaml",
            $"mode: 'stage2'\nbackbone: 'resnet32'\nresume: '{Path.Combine(out1, "last.ckpt")}'\n");
        (rc, output) = Run("stage2", "--config", s2, "--out", Path.Combine(dir.Path, "s2x"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("s2-mismatch.yaml:2: backbone", output);
        Assert.Contains("is a resnet8", output);
        var s2b = Yaml("s2-imb.yaml",
            $"mode: 'stage2'\nimb_factor: 0.02\nresume: '{Path.Combine(out1, "last.ckpt")}'\n");
        (rc, output) = Run("stage2", "--config", s2b, "--out", Path.Combine(dir.Path, "s2y"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("s2-imb.yaml:2: imb_factor", output);
    }

    [Fact]
    public void StageTwoFromAConfigImportsTheReferencesPyTorchCheckpoint()
    {
        var yaml = Yaml("s2.yaml", $"""
            name: tiny_stage2
            mode: 'stage2'
            dataset: 'fashion-mnist'
            data_path: '{set.Path}'
            num_classes: 10
            imb_factor: 0.1
            backbone: 'resnet8_fe'
            resume: '{Fixture("reference_resnet8.pth.tar")}'
            sampler:
              type: "weighted sampler"
              weighted_sampler:
                type: "balance"
              dual_sample:
                enable: True
                type: 'long-tailed'
            shift_bn: True
            lr_scheduler:
              type: 'cos'
              lr_factor: 0.2
            lr: 0.1
            batch_size: 32
            weight_decay: 5e-4
            num_epochs: 1
            momentum: 0.9
            mixup: False
            alpha: null
            H2T: 0.25
            """);
        var out2 = Path.Combine(dir.Path, "s2");
        var (rc, output) = Run("stage2", "--config", yaml, "--out", out2, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("importing the PyTorch checkpoint", output);
        Assert.True(File.Exists(Path.Combine(out2, "imported-stage1.ckpt")));
        var meta = Checkpoint.ReadMeta(Path.Combine(out2, "last.ckpt"));
        Assert.Equal("stage2", meta.Stage);
        Assert.Equal(0.25, meta.Config!.Value.Deserialize<StageTwoConfig>(AtomicFile.Json)!.Rho);
    }

    [Fact]
    public void ImportAndExportCommandsRoundTrip()
    {
        var ckpt = Path.Combine(dir.Path, "imported.ckpt");
        var (rc, output) = Run("import", Fixture("reference_resnet8.pth.tar"), "--dataset", "fashion-mnist", "--data",
            set.Path, "--imb-factor", "10",
            "--backbone", "resnet8", "--out", ckpt);
        Assert.True(rc == 0, output);
        Assert.Contains("next: h2t stage2", output);
        var pth = Path.Combine(dir.Path, "exported.pth");
        (rc, output) = Run("export", ckpt, "--out", pth);
        Assert.True(rc == 0, output);
        Assert.True(PyTorchCheckpoint.LooksLikePyTorch(pth));

        // stage2 --from a PyTorch file without a config says how to convert it.
        (rc, output) = Run("stage2", "--from", Fixture("reference_resnet8.pth.tar"), "--out", Path.Combine(dir.Path,
            "x"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("h2t import", output);
    }

    [Fact]
    public void BadConfigsExitWithTwoNamingFileLineAndKey()
    {
        var bad = Yaml("bad.yaml", "dataset: 'fashion-mnist'\nmomentun: 0.9\n");
        var (rc, output) = Run("stage1", "--config", bad, "--out", Path.Combine(dir.Path, "b"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("bad.yaml:2", output);
        Assert.Contains("unknown key 'momentun'", output);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "b")));

        (rc, output) = Run("stage1", "--config", StageOneYaml(), "num_classes=100", "--out", Path.Combine(dir.Path,
            "c"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("num_classes", output);
        Assert.Contains("has 10", output);

        // Overrides need no --config (any key is a flag or an override), and a bad one is named before anything runs.
        (rc, output) = Run("stage1", "lr=-0.1", "--out", Path.Combine(dir.Path, "d"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("override 'lr=-0.1': lr: lr must be > 0", output);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "d")));
    }

    /// <summary>
    /// The authors' CIFAR-100-LT configs, unchanged, with data_path pointed at CIFAR-100 binaries (tiny real-format
    /// files:
    /// 100 images per class, enough for IF = 100) and only the schedule shortened by overrides: stage I trains, and
    /// stage II trains H2T from its checkpoint.
    /// </summary>
    [Fact]
    public void TheAuthorsCifar100ConfigsRunWithDataPathPointedAtBinaries()
    {
        var data = Path.Combine(dir.Path, "cifar-100-binary");
        Directory.CreateDirectory(data);
        File.WriteAllBytes(Path.Combine(data, "train.bin"), DataTestFiles.CifarRecords([.. Enumerable.Range(0,
            10000).Select(i => i % 100)], hundred: true));
        File.WriteAllBytes(Path.Combine(data, "test.bin"), DataTestFiles.CifarRecords([.. Enumerable.Range(0,
            200).Select(i => i % 100)], hundred: true));
        string Reference(string name) => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Configuration",
            "Fixtures", "reference", name);

        var s1 = Path.Combine(dir.Path, "c100-s1");
        var (rc, output) = Run("stage1", "--config", Reference("cifar100_imb001_stage1_ce_mixup.yaml"),
            $"data_path={data}", "num_epochs=1",
            "--out", s1, "--threads", "2");
        Assert.True(rc == 0, output);
        var meta = Checkpoint.ReadMeta(Path.Combine(s1, "last.ckpt"));
        Assert.Equal(100, meta.NumClasses);
        Assert.Equal("resnet32", meta.Architecture);
        Assert.Equal(100, meta.ClassCounts[0]);
        Assert.Equal(1, meta.ClassCounts[99]);

        var s2 = Path.Combine(dir.Path, "c100-s2");
        (rc, output) = Run("stage2", "--config", Reference("cifar100_imb001_stage2_ce_H2T.yaml"), $"data_path={data}",
            $"resume={Path.Combine(s1, "last.ckpt")}",
            "num_epochs=1", "--out", s2, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("rho 0.25", output);
        var groups = File.ReadAllText(Path.Combine(s2, "report.md"));
        Assert.Contains("| test, final epoch (1) |", groups);
    }

    public void Dispose()
    {
        set.Dispose();
        dir.Dispose();
    }
}
