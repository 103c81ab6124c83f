using H2T.Runs;
using System.Diagnostics;
using System.Text.Json;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Training;

namespace H2T.Tests.Inference;

/// <summary>
/// <c>h2t predict</c> end to end on models trained by <c>h2t stage1</c> / <c>stage2</c> on the committed CIFAR-10
/// JPEGs: over the test split it gives, image for image, the top-1 <c>h2t eval</c> counts (same confusion matrix),
/// for a CIFAR ResNet, an ImageNet-style ResNet (resize + center crop), RIDE, ResLT and an LWS stage II; and the same
/// through ONNX Runtime after <c>h2t export --format onnx</c>.
/// </summary>
public sealed class PredictCommandTests : IDisposable
{
    readonly TempDir dir = new();
    static string Sample => DataTestFiles.CifarJpgSample;

    public void Dispose() => dir.Dispose();

    string Train(string name, string backbone, params string[] extra)
    {
        var run = Path.Combine(dir.Path, name);
        var (rc, output) = CliRunner.Run(["stage1", "--dataset",
            extra.Contains("imagefolder") ? "imagefolder" : "cifar10-jpg", "--data", Sample, "--imb-factor", "2",
            "--backbone", backbone, "--epochs", "1", "--batch-size", "50", "--out", run, "--threads", "2",
                .. extra.Where(e => e != "imagefolder")]);
        Assert.True(rc == 0, output);
        return Path.Combine(run, "last.ckpt");
    }

    static long[][] EvalConfusion(string checkpoint, string json)
    {
        var (rc, output) = CliRunner.Run("eval", "--checkpoint", checkpoint, "--out", json);
        Assert.True(rc == 0, output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return [.. doc.RootElement.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Select(v =>
            v.GetInt64()).ToArray())];
    }

    static List<JsonElement> Predict(string jsonl, params string[] args)
    {
        var (rc, output) = CliRunner.Run(["predict", .. args, "--out", jsonl]);
        Assert.True(rc == 0, output);
        return [.. File.ReadLines(jsonl).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
    }

    static long[][] Confusion(IReadOnlyList<JsonElement> rows, int classes)
    {
        var m = Enumerable.Range(0, classes).Select(_ => new long[classes]).ToArray();
        foreach (var r in rows) m[r.GetProperty("label").GetInt32()][r.GetProperty("top")[0].GetProperty(
            "index").GetInt32()]++;
        return m;
    }

    [Theory]
    [InlineData("resnet8")]
    [InlineData("ride_resnet8", "--loss", "ride")]
    [InlineData("reslt_resnet8", "--loss", "reslt")]
    [InlineData("resnet10", "imagefolder", "--image-size", "24")]
    [InlineData("convnext_micro", "imagefolder", "--image-size", "32")]
    [InlineData("vit_micro", "imagefolder", "--image-size", "32")]
    public void PredictCountsWhatEvalCounts(string backbone, params string[] extra)
    {
        var ckpt = Train(backbone, backbone, extra);
        var expected = EvalConfusion(ckpt, Path.Combine(dir.Path, "eval.json"));
        var test = Path.Combine(Sample, "test");
        var rows = Predict(Path.Combine(dir.Path, "p.jsonl"), "--checkpoint", ckpt, test, "--batch-size", "16");
        Assert.Equal(100, rows.Count);
        Assert.All(rows, r => Assert.Equal(JsonValueKind.Null, r.GetProperty("error").ValueKind));
        Assert.Equal(expected, Confusion(rows, 10));

        var onnx = Path.Combine(dir.Path, "m.onnx");
        var (rc, output) = CliRunner.Run("export", ckpt, "--format", "onnx", "--out", onnx);
        Assert.True(rc == 0, output);
        var viaOnnx = Predict(Path.Combine(dir.Path, "o.jsonl"), "--onnx", onnx, test);
        Assert.Equal(rows.Select(r => r.GetProperty("top")[0].GetProperty("index").GetInt32()),
            viaOnnx.Select(r => r.GetProperty("top")[0].GetProperty("index").GetInt32()));
    }

    [Fact]
    public void AnLwsStageTwoPredictsWithItsScaledClassifier()
    {
        var s1 = Train("s1", "resnet8");
        var s2 = Path.Combine(dir.Path, "s2");
        var (rc, output) = CliRunner.Run("stage2", "--from", s1, "--classifier", "lws", "--rho", "0.5", "--epochs", "1",
            "--batch-size", "50", "--out", s2);
        Assert.True(rc == 0, output);
        var ckpt = Path.Combine(s2, "last.ckpt");
        Assert.Equal("lws", Checkpoint.ReadMeta(ckpt).Classifier);
        var expected = EvalConfusion(ckpt, Path.Combine(dir.Path, "eval.json"));
        var rows = Predict(Path.Combine(dir.Path, "p.jsonl"), "--checkpoint", ckpt, Path.Combine(Sample, "test"));
        Assert.Equal(expected, Confusion(rows, 10));
    }

    [Fact]
    public void ListFilesCsvTopKAndBadImages()
    {
        var ckpt = Train("s1", "resnet8");
        // A list file with labels, one line without, one missing file and one junk file.
        var images = Path.Combine(dir.Path, "images");
        Directory.CreateDirectory(images);
        File.Copy(Path.Combine(Sample, "test", "cat", "0000.jpg"), Path.Combine(images, "a cat.jpg"));
        File.Copy(Path.Combine(Sample, "test", "ship", "0000.jpg"), Path.Combine(images, "ship.jpg"));
        File.WriteAllText(Path.Combine(images, "junk.jpg"), "not a jpeg");
        var list = Path.Combine(images, "list.txt");
        File.WriteAllLines(list, ["a cat.jpg 3", "ship.jpg", "missing.jpg 1", "junk.jpg 2"]);
        var csv = Path.Combine(dir.Path, "p.csv");
        var (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, list, "--top-k", "3", "--out", csv);
        Assert.True(rc == 0, output);
        Assert.Contains("4 image(s), 2 failed", output);
        var lines = File.ReadAllLines(csv);
        Assert.Equal("path,label,correct,top1_index,top1_name,top1_probability,top_k,error", lines[0]);
        Assert.Equal(5, lines.Length);
        Assert.Equal(3, lines[1].Split(',')[6].Split(' ').Length);        // top-3
        Assert.EndsWith(",", lines[2].Split(",,")[0] + ",");            // no label: empty label and correct
        Assert.Contains("missing.jpg", lines[3]);
        Assert.Contains("image file not found", lines[3]);
        Assert.Contains("not a decodable image", lines[4]);

        (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, list, "--strict");
        Assert.Equal(2, rc);
        Assert.Contains("error:", output); // the failed lines are printed

        // Nothing readable at all: exit 2.
        (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, Path.Combine(images, "junk.jpg"));
        Assert.Equal(2, rc);
        Assert.Contains("no image could be read", output);
    }

    [Fact]
    public void TheTerminalShowsATableAndStreamsLongRuns()
    {
        var ckpt = Train("s1", "resnet8");
        var (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, Path.Combine(Sample, "test", "cat"),
            "--top-k", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("top-k (probability)", output);                         // one table for a short run
        Assert.Equal(10, output.Split('\n').Count(l => l.Contains("│ ") && l.Contains("cat/00")));
        // 300 images (train + test): past the table's 200 rows every image gets its own line, none is lost.
        (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, Sample, "--top-k", "1", "--batch-size", "128");
        Assert.True(rc == 0, output);
        Assert.DoesNotContain("top-k (probability)", output);
        Assert.Equal(300, output.Split('\n').Count(l => l.Contains(".jpg  ", StringComparison.Ordinal)));
        Assert.Contains("300 image(s), 0 failed", output);
    }

    /// <summary>
    /// auto runs an ImageNet ResNet in fp32 on ONNX Runtime (the checkpoint's export, made in memory) and a CIFAR
    /// ResNet
    /// on TorchSharp; both engines give the same counts and nearly the same probabilities, in eval and predict.
    /// </summary>
    [Fact]
    public void AutoRunsImageNetResNetsOnOnnxRuntimeAndTheEnginesAgree()
    {
        var ckpt = Train("r10", "resnet10", "imagefolder", "--image-size", "24");
        var test = Path.Combine(Sample, "test");
        var (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--out", Path.Combine(dir.Path, "auto.json"));
        Assert.True(rc == 0, output);
        Assert.Contains("on ONNX Runtime", output);
        (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--engine", "torchsharp", "--out",
            Path.Combine(dir.Path, "torch.json"));
        Assert.True(rc == 0, output);
        Assert.Contains("on TorchSharp (fp32)", output);
        JsonElement Read(string f) => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, f))).RootElement;
        Assert.Equal(Read("torch.json").GetProperty("confusion").ToString(),
            Read("auto.json").GetProperty("confusion").ToString());
        Assert.Equal(Read("torch.json").GetProperty("top1").GetDouble(),
            Read("auto.json").GetProperty("top1").GetDouble(), 1e-9);
        Assert.Equal(Read("torch.json").GetProperty("ece").GetDouble(),
            Read("auto.json").GetProperty("ece").GetDouble(), 1e-3);

        var viaOrt = Predict(Path.Combine(dir.Path, "ort.jsonl"), "--checkpoint", ckpt, test);
        var viaTorch = Predict(Path.Combine(dir.Path, "torch.jsonl"), "--checkpoint", ckpt, test, "--engine",
            "torchsharp");
        Assert.Equal(100, viaOrt.Count);
        foreach (var (a, b) in viaOrt.Zip(viaTorch))
        {
            Assert.Equal(b.GetProperty("top")[0].GetProperty("index").GetInt32(),
                a.GetProperty("top")[0].GetProperty("index").GetInt32());
            Assert.Equal(b.GetProperty("top")[0].GetProperty("probability").GetDouble(),
                a.GetProperty("top")[0].GetProperty("probability").GetDouble(), 1e-4);
        }
        (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, test, "--batch-size", "16");
        Assert.True(rc == 0, output);
        Assert.Contains("ONNX Runtime", output);
        Assert.Contains("the checkpoint's fp32 export", output);

        // A CIFAR ResNet stays on TorchSharp (level there); bf16 too, and ONNX Runtime refuses it.
        var small = Train("r8", "resnet8");
        (rc, output) = CliRunner.Run("eval", "--checkpoint", small);
        Assert.True(rc == 0, output);
        Assert.Contains("on TorchSharp (fp32)", output);
        (rc, output) = CliRunner.Run("eval", "--checkpoint", small, "--engine", "onnxruntime");
        Assert.True(rc == 0, output);
        Assert.Contains("on ONNX Runtime", output);
        (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--precision", "bf16");
        Assert.True(rc == 0, output);
        Assert.Contains("on TorchSharp (bf16)", output);
        foreach (var (args, says) in new (string[], string)[]
        {
            (["predict", "--checkpoint", ckpt, test, "--engine", "tensorrt"],
                "expected auto, torchsharp or onnxruntime"),
            (["eval", "--checkpoint", ckpt, "--engine", "onnxruntime", "--precision", "bf16"],
                "ONNX Runtime runs the fp32 export; bf16 runs on TorchSharp"),
        })
        {
            (rc, output) = CliRunner.Run(args);
            Assert.True(rc != 0, $"{string.Join(' ', args)}: exit {rc}\n{output}");
            Assert.Contains(says, output);
        }
    }

    [Fact]
    public void BadModelsAndPathsGetOneLineAndExitTwo()
    {
        var junk = Path.Combine(dir.Path, "junk.onnx");
        File.WriteAllText(junk, "this is not protobuf");
        var image = Path.Combine(Sample, "test", "cat", "0000.jpg");
        var empty = Path.Combine(dir.Path, "empty");
        Directory.CreateDirectory(empty);
        var ckpt = Train("s1", "resnet8");
        var truncated = Path.Combine(dir.Path, "truncated.ckpt");
        File.WriteAllBytes(truncated, File.ReadAllBytes(ckpt)[..5000]);
        var onnx = Path.Combine(dir.Path, "m.onnx");
        Assert.Equal(0, CliRunner.Run("export", ckpt, "--format", "onnx", "--out", onnx).Rc);
        var cut = Path.Combine(dir.Path, "cut.onnx");
        File.WriteAllBytes(cut, File.ReadAllBytes(onnx)[..20000]);
        var zip = Path.Combine(dir.Path, "weights.pth");
        File.WriteAllBytes(zip, [(byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0]);

        foreach (var (args, says) in new (string[], string)[]
        {
            (["predict", "--onnx", junk, image], "not a loadable ONNX model"),
            (["predict", "--onnx", cut, image], "not a loadable ONNX model"),
            (["predict", "--checkpoint", truncated, image], "truncated"),
            (["predict", "--checkpoint", zip, image], "h2t import"),
            (["predict", "--checkpoint", Path.Combine(dir.Path, "none.ckpt"), image], "model not found"),
            (["predict", "--checkpoint", ckpt, Path.Combine(dir.Path, "nowhere")], "no such file or folder"),
            (["predict", "--checkpoint", ckpt, empty], "no .jpg/.jpeg/.png images"),
            (["predict", image], "exactly one of --checkpoint"),
            (["predict", "--checkpoint", ckpt, image, "--out", Path.Combine(dir.Path, "x.txt")], ".jsonl or .csv"),
            (["export", ckpt, "--format", "tflite"], "expected onnx or pytorch"),
        })
        {
            var (rc, output) = CliRunner.Run(args);
            Assert.True(rc == 2, $"{string.Join(' ', args)}: exit {rc}\n{output}");
            Assert.Contains(says, output);
            Assert.Single(output.Trim().Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task OnnxPredictionRunsWithoutLibtorch()
    {
        var ckpt = Train("s1", "resnet8");
        var onnx = Path.Combine(dir.Path, "m.onnx");
        Assert.Equal(0, CliRunner.Run("export", ckpt, "--format", "onnx", "--out", onnx).Rc);
        // A copy of the h2t build with every libtorch / LibTorchSharp / c10 library left out (a copy: the host resolves
        // symbolic links, so links would find the originals): touching TorchSharp's native side fails there.
        var cli = Path.GetDirectoryName(typeof(H2T.Cli.CliApp).Assembly.Location)!;
        var farm = Path.Combine(dir.Path, "no-libtorch");
        int skipped = CopyAllBut(cli, farm, n => n.StartsWith("libtorch",
            StringComparison.Ordinal) || n.StartsWith("libLibTorchSharp", StringComparison.Ordinal)
                                                 || n.StartsWith("libc10", StringComparison.Ordinal));
        Assert.True(skipped >= 2, $"expected libtorch's libraries in {cli}");
        var cat = Path.Combine(Sample, "test", "cat");
        var (rc, printed) = await RunDotnet(Path.Combine(farm, "h2t.dll"), "predict", "--onnx", onnx, cat);
        Assert.True(rc == 0, printed);
        Assert.Contains("10 image(s), 0 failed", printed);
        Assert.Contains("ONNX Runtime", printed);
        // The control: the checkpoint needs libtorch, and the copy really lacks it.
        (rc, printed) = await RunDotnet(Path.Combine(farm, "h2t.dll"), "predict", "--checkpoint", ckpt, cat);
        Assert.True(rc != 0, printed);
    }

    static async Task<(int Rc, string Output)> RunDotnet(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + stderr);
    }

    static int CopyAllBut(string from, string to, Func<string, bool> leaveOut)
    {
        int skipped = 0;
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from))
        {
            var name = Path.GetFileName(f);
            if (leaveOut(name)) { skipped++; continue; }
            File.Copy(f, Path.Combine(to, name));
        }
        foreach (var d in Directory.GetDirectories(from)) skipped += CopyAllBut(d, Path.Combine(to,
            Path.GetFileName(d)), leaveOut);
        return skipped;
    }
}
