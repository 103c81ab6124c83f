using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using H2T.Cli;
using H2T.Data;
using H2T.Inference;
using H2T.Serving;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Interop;
using static TorchSharp.torch;

namespace H2T.Tests.Inference;

/// <summary>
/// LIFT's test-time ensemble: the views against torchvision 0.14's Resize(size + 24) / FiveCrop / TenCrop on real
/// CIFAR-10 images (Fixtures/make_tta_fixture.py, run into the temp folder), the ensemble of a model trained by
/// <c>h2t stage1</c> against the mean of its per-view logits, and <c>--tta</c> through eval, predict and serve.
/// </summary>
public sealed class TestTimeEnsembleTests : IDisposable
{
    readonly TempDir dir = new();
    static string Sample => DataTestFiles.CifarJpgSample;
    static string Script => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Inference", "Fixtures",
        "make_tta_fixture.py");

    public void Dispose() => dir.Dispose();

    static readonly string[] FixtureImages = ["test/cat/0000.jpg", "test/airplane/0000.jpg"];

    static byte[] Bytes(string folder, string name) => File.ReadAllBytes(Path.Combine(folder, name));

    [RequiresPyTorchFact]
    public void TheViewsAreTorchvisionsResizeFiveCropAndTenCrop()
    {
        var images = FixtureImages.Select(i => Path.Combine(Sample, i));
        var (rc, _, err) = PyTorchFixtures.Run([Script, dir.Path, "24", .. images]);
        Assert.True(rc == 0, err);
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "meta.json")));
        var cases = meta.RootElement.GetProperty("cases").EnumerateArray().ToList();
        Assert.Equal(4, cases.Count); // two images, each square (32 x 32) and wide (24 x 32)
        foreach (var c in cases)
        {
            string name = c.GetProperty("case").GetString()!;
            int h = c.GetProperty("height").GetInt32(), w = c.GetProperty("width").GetInt32();
            using var scope = NewDisposeScope();
            var input = tensor(Bytes(dir.Path, $"{name}.input.bin"), [1, 3, h, w]);
            foreach (var (mode, views) in new[] { ("fivecrop", 5), ("tencrop", 10) })
            {
                var tta = new TestTimeEnsemble(TestTimeEnsemble.Modes.Parse(mode));
                Assert.Equal(views, tta.ViewCount);
                var ours = tta.Views(input);
                Assert.Equal(new long[] { views, 1, 3, h, w }, ours.shape);
                Assert.Equal(ScalarType.Byte, ours.dtype);
                var got = ours.contiguous().data<byte>().ToArray();
                // torchvision on a uint8 tensor: the same bilinear kernel, rounded as torchvision rounds. Equal but
                // where torch 1.13's value lies within 1e-3 of a half (this libtorch's float sum may round the
                // other way there).
                var tv = Bytes(dir.Path, $"{name}.{mode}.tensor.bin");
                var raw = new float[tv.Length];
                Buffer.BlockCopy(Bytes(dir.Path, $"{name}.{mode}.float.bin"), 0, raw, 0, raw.Length * 4);
                int ties = 0;
                for (int i = 0; i < got.Length; i++)
                {
                    if (got[i] == tv[i]) continue;
                    bool tie = Math.Abs(raw[i] - Math.Floor(raw[i]) - 0.5) < 1e-3 && Math.Abs(got[i] - tv[i]) == 1;
                    Assert.True(tie, $"{name} {mode} [{i}]: {got[i]}, torchvision {tv[i]} ({raw[i]})");
                    ties++;
                }
                Assert.True(ties < got.Length / 100, $"{name} {mode}: {ties} ties of {got.Length}");
                // On a PIL image (what LIFT's trainer.py resizes): PIL's fixed-point bilinear, at most 1 level off.
                var pil = Bytes(dir.Path, $"{name}.{mode}.pil.bin");
                Assert.Equal(pil.Length, got.Length);
                int off = Enumerable.Range(0, got.Length).Max(i => Math.Abs(got[i] - pil[i]));
                Assert.True(off <= 1, $"{name} {mode}: {off} levels from PIL's views");
            }
        }
    }

    [Fact]
    public void ANormalisedBatchGivesTheViewsOfItsPixels()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var pixels = randint(0, 256, [2, 3, 32, 32]).to_type(ScalarType.Byte);
        var norm = Normalization.Cifar;
        var (s, m) = norm.ForBytes();
        Tensor Normalise(Tensor x) => x.to_type(ScalarType.Float32).mul(tensor(s).reshape(1, 3, 1, 1))
            .sub(tensor(m).reshape(1, 3, 1, 1));
        var tta = new TestTimeEnsemble(TestTimeViews.TenCrop);
        var expected = Normalise(tta.Views(pixels).reshape(20, 3, 32, 32)).reshape(10, 2, 3, 32, 32);
        var got = tta.ViewsOfNormalized(Normalise(pixels), norm);
        Assert.True(got.allclose(expected, rtol: 0, atol: 1e-5));
        // views differ from one another and from the input: the test can fail
        Assert.False(got[0].allclose(got[4]));
        Assert.False(got[0].allclose(got[5]));
    }

    [Fact]
    public void SizesModesAndBadValuesAreSaidClearly()
    {
        var tta = new TestTimeEnsemble();
        Assert.Equal((TestTimeViews.FiveCrop, 24, 5), (tta.Mode, tta.Expand, tta.ViewCount));
        Assert.Equal((56, 56), tta.EnlargedSize(32, 32));
        Assert.Equal((52, 52), tta.EnlargedSize(28, 28));
        Assert.Equal((248, 248), tta.EnlargedSize(224, 224));
        Assert.Equal((48, 64), tta.EnlargedSize(24, 32));
        Assert.Equal("test-time ensemble: 5 views (fivecrop of 32x32 from 56x56), mean of logits",
            tta.Describe(32, 32));
        Assert.True(TestTimeEnsemble.TryParse("1", out var on) && on == new TestTimeEnsemble());
        Assert.True(TestTimeEnsemble.TryParse("off", out var off) && off is null);
        Assert.True(TestTimeEnsemble.TryParse("TenCrop", out var ten) && ten!.ViewCount == 10);
        Assert.False(TestTimeEnsemble.TryParse("sixcrop", out _));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TestTimeEnsemble(expand: 0));
        Assert.Contains("expand must be >= 1", e.Message);
        using var scope = NewDisposeScope();
        var bad = Assert.Throws<ArgumentException>(() => tta.Views(zeros(3, 32, 32)));
        Assert.Contains("expected N x C x H x W", bad.Message);
    }

    string Train()
    {
        var run = Path.Combine(dir.Path, "run");
        var (rc, output) = CliRunner.Run("stage1", "--dataset", "cifar10-jpg", "--data", Sample, "--imb-factor", "2",
            "--backbone", "resnet8", "--epochs", "1", "--batch-size", "50", "--out", run, "--threads", "2");
        Assert.True(rc == 0, output);
        return Path.Combine(run, "last.ckpt");
    }

    static (byte[] Pixels, int Count) Decode(ImageClassifier model, string[] files)
    {
        int size = model.Card.Preprocessing.Shape.Size;
        var pixels = new byte[files.Length * size];
        for (int i = 0; i < files.Length; i++)
            ImageDecoder.Decode(files[i], model.Card.Preprocessing.Plan, pixels.AsSpan(i * size, size));
        return (pixels, files.Length);
    }

    static long[][] EvalConfusion(string json)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return [.. doc.RootElement.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray()
            .Select(v => v.GetInt64()).ToArray())];
    }

    static long[][] PredictConfusion(string jsonl)
    {
        var m = Enumerable.Range(0, 10).Select(_ => new long[10]).ToArray();
        foreach (var line in File.ReadLines(jsonl))
        {
            using var r = JsonDocument.Parse(line);
            m[r.RootElement.GetProperty("label").GetInt32()][r.RootElement.GetProperty("top")[0]
                .GetProperty("index").GetInt32()]++;
        }
        return m;
    }

    /// <summary>One trained model for the library, CLI and serve checks (training is the slow part).</summary>
    [Fact]
    public async Task ATrainedModelsEnsembleIsTheMeanOfItsViewsThroughTheLibraryEvalPredictAndServe()
    {
        var ckpt = Train();
        var files = InferenceFixtures.TestImages()[..12];

        // Library: the ensemble equals the mean of the model's logits on each view, run as separate batches.
        using (var model = ImageClassifier.Load(ckpt, new ClassifierOptions { Threads = 2 }))
        {
            var (pixels, n) = Decode(model, files);
            int k = model.ClassNames.Count;
            var plain = model.Logits(pixels, n);
            foreach (var tta in new[] { new TestTimeEnsemble(), new TestTimeEnsemble(TestTimeViews.TenCrop) })
            {
                var ensemble = model.Logits(pixels, n, tta);
                using var scope = NewDisposeScope();
                var views = tta.Views(tensor(pixels, [n, 3, 32, 32]));
                var mean = new double[n * k];
                for (int v = 0; v < tta.ViewCount; v++)
                {
                    var logits = model.Logits(views[v].contiguous().data<byte>().ToArray(), n, null);
                    for (int i = 0; i < mean.Length; i++) mean[i] += logits[i] / tta.ViewCount;
                }
                double worst = Enumerable.Range(0, mean.Length).Max(i => Math.Abs(ensemble[i] - mean[i]));
                Assert.True(worst < 1e-4, $"{tta.Mode}: ensemble is {worst} from the mean of the views' logits");
                double moved = Enumerable.Range(0, mean.Length).Max(i => Math.Abs(ensemble[i] - plain[i]));
                Assert.True(moved > 1e-3, $"{tta.Mode}: the ensemble equals the plain logits");
            }
        }

        // CLI: eval --tta (the data loader's normalised batches) counts what predict --tta (decoded bytes) counts.
        var json = Path.Combine(dir.Path, "eval.json");
        var (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--tta-mode", "tencrop", "--out", json,
            "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("test-time ensemble: 10 views (tencrop of 32x32 from 56x56), mean of logits", output);
        var jsonl = Path.Combine(dir.Path, "p.jsonl");
        (rc, output) = CliRunner.Run("predict", "--checkpoint", ckpt, Path.Combine(Sample, "test"), "--tta-mode",
            "tencrop", "--batch-size", "16", "--out", jsonl, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("test-time ensemble: 10 views", output);
        Assert.Equal(EvalConfusion(json), PredictConfusion(jsonl));
        // ONNX Runtime's eval (bytes through ImageClassifier.Evaluate) counts the same.
        var onnx = Path.Combine(dir.Path, "eval-onnx.json");
        (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--tta-mode", "tencrop", "--engine", "onnxruntime",
            "--out", onnx, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("test-time ensemble: 10 views", output);
        Assert.Equal(EvalConfusion(json), EvalConfusion(onnx));
        (rc, output) = CliRunner.Run("eval", "--checkpoint", ckpt, "--threads", "2");
        Assert.True(rc == 0, output);
        Assert.Contains("test-time ensemble: off (1 view)", output);

        // Serve: --tta as the server's default, ?tta= per request, a bad value a 400 naming it.
        var app = ClassifierHost.Build(ckpt, "127.0.0.1", 0, new ClassifierOptions { Threads = 2,
            TestTime = new TestTimeEnsemble() });
        await app.StartAsync();
        await using var running = app;
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        using var library = ImageClassifier.Load(ckpt, new ClassifierOptions { Threads = 2 });
        var (one, _) = Decode(library, files[..1]);
        foreach (var (query, tta) in new (string, TestTimeEnsemble?)[] { ("", new TestTimeEnsemble()),
            ("?tta=tencrop", new TestTimeEnsemble(TestTimeViews.TenCrop)), ("?tta=0", null) })
        {
            var body = new ByteArrayContent(File.ReadAllBytes(files[0]));
            body.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
            var r = await http.PostAsync($"/v1/predict{query}", body);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            Assert.Equal(tta?.ViewCount ?? 1, doc.RootElement.GetProperty("views").GetInt32());
            var expected = library.FromPixels(one, 1, 5, tta)[0];
            var top = doc.RootElement.GetProperty("predictions")[0].GetProperty("top")[0];
            Assert.Equal(expected.Best.Index, top.GetProperty("index").GetInt32());
            Assert.Equal(expected.Best.Probability, top.GetProperty("probability").GetDouble(), 5);
        }
        var bad = new ByteArrayContent(File.ReadAllBytes(files[0]));
        bad.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        var refused = await http.PostAsync("/v1/predict?tta=sixcrop", bad);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("tta 'sixcrop': expected on / off", await refused.Content.ReadAsStringAsync());
        using var card = JsonDocument.Parse(await http.GetStringAsync("/v1/model"));
        Assert.Equal(5, card.RootElement.GetProperty("tta").GetProperty("views").GetInt32());
    }

    [Theory]
    [InlineData("--tta-mode", "sixcrop", "--tta-mode sixcrop: expected fivecrop, tencrop")]
    [InlineData("--tta-expand", "0", "--tta-expand 0: expected >= 1 pixel")]
    public void BadFlagsAreRefusedByEvalPredictAndServe(string flag, string value, string says)
    {
        var ckpt = Path.Combine(dir.Path, "none.ckpt");
        foreach (var args in new[] { new[] { "eval", "--checkpoint", ckpt }, ["predict", "--checkpoint", ckpt, "x.jpg"],
            ["serve", ckpt] })
        {
            var (rc, output) = CliRunner.Run([.. args, flag, value]);
            Assert.True(rc == CliApp.UsageError, output);
            Assert.Contains(says, output.ReplaceLineEndings(""));
        }
        var (code, text) = CliRunner.Run("eval", "--checkpoint", ckpt, "--tta=false", "--tta-mode", "tencrop");
        Assert.True(code == CliApp.UsageError, text);
        Assert.Contains("--tta=false with --tta-mode", text);
    }
}
