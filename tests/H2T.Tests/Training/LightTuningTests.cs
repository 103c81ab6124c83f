using System.Text.Json;
using H2T.Runs;
using H2T.Tests.Cli;
using H2T.Tests.Data;

namespace H2T.Tests.Training;

/// <summary>LIFT's recipe through the CLI: SSF tuning, class-mean head, AdamW; the checkpoint records the tuning and
/// the counts, and evaluation of the folded checkpoint gives the run's own final numbers.</summary>
public sealed class LightTuningTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir runs = new();

    public void Dispose()
    {
        set.Dispose();
        runs.Dispose();
    }

    [Fact]
    public void SsfWithAClassMeanCosineHeadTrainsRecordsAndEvaluatesTheSame()
    {
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor",
            "10", "--epochs", "1", "--backbone", "resnet8", "--batch-size", "32", "--lr", "0.01", "--tuning", "ssf",
            "--classifier", "cosine", "--loss", "logit-adjust", "--head-init", "class-mean", "--optimizer", "adamw",
            "--wd", "0.05", "--mixup", "0", "--out", s1);
        Assert.True(rc == 0, output);
        Assert.Contains("tuning ssf:", output);
        Assert.Contains("head_init class-mean", output);
        var ckpt = Path.Combine(s1, "last.ckpt");
        var meta = Checkpoint.ReadMeta(ckpt);
        Assert.Equal("ssf", meta.Tuning);
        Assert.Equal(25.0, meta.CosineScale);
        Assert.True(meta.TrainableParameters > 0 && meta.TrainableParameters < meta.BackboneParameters / 10,
            $"{meta.TrainableParameters} of {meta.BackboneParameters}");
        var log = File.ReadAllText(Path.Combine(s1, "log.txt"));
        Assert.Contains("tuning ssf:", log);

        using var eval = EvalMatchesTheRunsFinal(ckpt, s1, Path.Combine(runs.Path, "eval.json"));

        // Stage II from the tuned backbone: the folded checkpoint feeds it like a plain one.
        var s2 = Path.Combine(runs.Path, "s2");
        (rc, output) = CliRunner.Run("stage2", "--from", ckpt, "--rho", "0.3", "--epochs", "1", "--batch-size", "32",
            "--optimizer", "adamw", "--out", s2);
        Assert.True(rc == 0, output);
    }

    /// <summary><c>h2t eval</c> of a run's checkpoint (opened, tuning folded where it folds) gives the top-1 the run
    /// measured at its end; returns the eval's JSON.</summary>
    internal static JsonDocument EvalMatchesTheRunsFinal(string checkpoint, string run, string json)
    {
        var (rc, output) = CliRunner.Run("eval", "--checkpoint", checkpoint, "--out", json);
        Assert.True(rc == 0, output);
        var eval = JsonDocument.Parse(File.ReadAllText(json));
        using var final = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "final-eval.json")));
        Assert.Equal(final.RootElement.GetProperty("top1").GetDouble(),
            eval.RootElement.GetProperty("top1").GetDouble(),
            6);
        return eval;
    }

    [Theory]
    [InlineData(new[] { "--tuning", "ssf", "--trainable", "layer3" }, "exclusive")]
    [InlineData(new[] { "--tuning", "lora" }, "needs a ViT backbone")]
    [InlineData(new[] { "--tuning", "half" }, "expected full, frozen")]
    [InlineData(new[] { "--head-init", "zeros" }, "expected random, class-mean")]
    [InlineData(new[] { "--optimizer", "adam" }, "expected sgd, adamw")]
    [InlineData(new[] { "--optimizer", "adamw", "--nesterov" }, "nesterov is SGD's")]
    public void BadTuningOptionsSayWhatIsExpected(string[] extra, string message)
    {
        var (rc, output) = CliRunner.Run(["stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--epochs", "1",
            "--backbone", "resnet8", "--out", Path.Combine(runs.Path, "bad"), .. extra]);
        Assert.NotEqual(0, rc);
        Assert.Contains(message, output);
    }
}

/// <summary>The end-to-end check: a small random ViT tuned with each LIFT module in stage I, then a stage II
/// with H2T on its class token, eval and predict from the checkpoints.</summary>
public sealed class VitLightTuningTests : IDisposable
{
    readonly TempDir runs = new();

    public void Dispose() => runs.Dispose();

    [Theory]
    [InlineData("adaptformer")]
    [InlineData("lora")]
    [InlineData("vpt-deep")]
    public void PeftStageOneThenH2TStageTwoOnAViT(string tuning)
    {
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "cifar10-jpg", "--data", DataTestFiles.CifarJpgSample,
            "--imb-factor", "2", "--backbone", "vit_micro", "--epochs", "1", "--batch-size", "50", "--lr", "0.01",
            "--tuning", tuning, "--tuning-dim", "4", "--classifier", "cosine", "--loss", "logit-adjust",
            "--head-init", "class-mean", "--mixup", "0", "--optimizer", "adamw", "--out", s1);
        Assert.True(rc == 0, output);
        Assert.Contains($"tuning {tuning} (dim 4):", output);
        var ckpt = Path.Combine(s1, "last.ckpt");
        var meta = Checkpoint.ReadMeta(ckpt);
        Assert.Equal(tuning, meta.Tuning);
        Assert.Equal(4, meta.TuningDim);

        var s2 = Path.Combine(runs.Path, "s2");
        (rc, output) = CliRunner.Run("sweep", "--from", ckpt, "--rho", "0,0.5", "--epochs", "1", "--batch-size", "50",
            "--val-per-class", "2", "--feature-cache", "pooled", "--out", s2);
        Assert.True(rc == 0, output);
        Assert.Contains("(selected)", output);

        using var eval = LightTuningTests.EvalMatchesTheRunsFinal(ckpt, s1, Path.Combine(runs.Path, "eval.json"));

        // The export carries the adapters and prompts (LoRA folded): ONNX Runtime's eval equals TorchSharp's.
        var viaOnnx = Path.Combine(runs.Path, "onnx-eval.json");
        (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--engine", "onnxruntime", "--out", viaOnnx);
        Assert.True(rc == 0, output);
        using var ort = JsonDocument.Parse(File.ReadAllText(viaOnnx));
        Assert.Equal(eval.RootElement.GetProperty("confusion").ToString(),
            ort.RootElement.GetProperty("confusion").ToString());
    }
}
