using System.Text.Json;
using H2T.Runs;
using H2T.Inference;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Training;
using Xunit.Abstractions;

namespace H2T.Tests.Interop;

/// <summary>
/// README "Your own data" with no Python: an image folder, --pretrained mlnet:resnet18 (the NuGet package's weights),
/// stage I, a rho sweep, predict from the checkpoint, export to ONNX and predict with ONNX Runtime. The network's own
/// normalisation (CNTK's channel means, no std) travels from stage I to every later step.
/// </summary>
public sealed class PretrainedUserPathTests(ITestOutputHelper output)
{
    [Fact]
    public void AnImageFolderFromTheNuGetWeightsThroughStageOneSweepPredictAndExport()
    {
        using var data = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(data.Path, perClass: 6);
        // An image folder of the user's: 32-px JPEGs under train/<class>/ and test/<class>/.
        var images = Path.Combine(data.Path, "my-images");
        Directory.CreateDirectory(images);
        foreach (var split in new[] { "train", "test" }) Directory.Move(Path.Combine(data.Path, split),
            Path.Combine(images, split));
        using var runs = new TempDir();
        var s1 = Path.Combine(runs.Path, "s1");
        var (rc, text) = CliRunner.Run("stage1", "--dataset", "imagefolder", "--data", images, "--imb-factor", "3",
            "--backbone", "resnet18_cntk",
            "--pretrained", "mlnet:resnet18", "--resize", "64", "--trainable", "layer4", "--epochs", "1",
                "--batch-size", "16", "--lr", "0.01",
            "--mixup", "0.2", "--out", s1, "--threads", "2");
        Assert.True(rc == 0, text);
        var log = File.ReadAllText(Path.Combine(s1, "log.txt"));
        output.WriteLine(log);
        Assert.Contains("pretrained backbone: 110 tensor(s) loaded", log);
        Assert.Contains("reordered to take RGB", log);
        var meta = Checkpoint.ReadMeta(Path.Combine(s1, "last.ckpt"));
        Assert.Equal("resnet18_cntk", meta.Architecture);
        var pre = meta.Preprocessing!;
        Assert.Equal(64, pre.Height);
        Assert.InRange(pre.Mean[0] * 255, 122.5, 124); // CNTK's red mean, RGB order
        Assert.All(pre.Std, s => Assert.Equal(1f / 255, s, 6));

        var s2 = Path.Combine(runs.Path, "s2");
        (rc, text) = CliRunner.Run("sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.5", "--epochs", "1",
            "--batch-size", "16",
            "--val-per-class", "2", "--out", s2, "--threads", "2");
        Assert.True(rc == 0, text);
        var selected = Path.Combine(s2, "selected.ckpt");
        var s2pre = Checkpoint.ReadMeta(selected).Preprocessing!;
        Assert.Equal(pre.Mean, s2pre.Mean);
        Assert.Equal(pre.Std, s2pre.Std);

        var test = Path.Combine(images, "test");
        var jsonl = Path.Combine(runs.Path, "p.jsonl");
        (rc, text) = CliRunner.Run("predict", "--checkpoint", selected, test, "--out", jsonl);
        Assert.True(rc == 0, text);
        var onnx = Path.Combine(runs.Path, "m.onnx");
        (rc, text) = CliRunner.Run("export", selected, "--format", "onnx", "--out", onnx);
        Assert.True(rc == 0, text);
        using (var classifier = ImageClassifier.Load(onnx))
            Assert.Equal(pre.Mean, classifier.Card.Preprocessing.Mean);
        var viaOnnx = Path.Combine(runs.Path, "o.jsonl");
        (rc, text) = CliRunner.Run("predict", "--onnx", onnx, test, "--out", viaOnnx);
        Assert.True(rc == 0, text);
        static int[] Top(string file) => [.. File.ReadAllLines(file).Select(l =>
            JsonDocument.Parse(l).RootElement.GetProperty("top")[0].GetProperty("index").GetInt32())];
        Assert.Equal(60, Top(jsonl).Length);
        Assert.Equal(Top(jsonl), Top(viaOnnx));
    }
}
