using H2T.Runs;
using H2T.Onnx;
using H2T.Inference;
using Xunit.Abstractions;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Inference;
using H2T.Tests.Interop;
using H2T.Tests.Training;

namespace H2T.Tests.Onnx;

/// <summary>
/// Every backbone and classifier exported to ONNX and run by ONNX Runtime (Microsoft.ML.OnnxRuntime, a real runtime)
/// gives TorchSharp's evaluation logits to 1e-4 (relative to the largest logit) on real CIFAR-10 images, and the same
/// top-1 on all 100 committed test images; Debian's python3-onnx checker accepts each file.
/// </summary>
public sealed class OnnxExportTests(ITestOutputHelper output) : IDisposable
{
    readonly TempDir dir = new();

    public void Dispose() => dir.Dispose();

    public static TheoryData<string, string> Architectures => new()
    {
        { "resnet32", "linear" }, { "resnet8", "cosine" }, { "resnet8", "lws" }, { "resnet8", "taunorm" },
        { "ride_resnet8", "ride" }, { "reslt_resnet8", "reslt" },
        { "resnet10", "linear" }, { "resnet50", "linear" }, { "resnext50", "linear" }, { "resnet152", "linear" },
        { "convnext_micro", "linear" }, { "convnext_micro", "cosine" },
    };

    [Theory]
    [MemberData(nameof(Architectures))]
    public void OnnxRuntimeGivesTorchSharpsLogits(string architecture, string head)
    {
        var ckpt = InferenceFixtures.Checkpoint(dir.Path, architecture, head, seed: 7);
        var onnx = Path.Combine(dir.Path, $"{architecture}-{head}.onnx");
        var result = OnnxExporter.Export(ckpt, onnx);
        Assert.True(result.Bytes > 0);

        var images = InferenceFixtures.TestImages();
        using var torch = ImageClassifier.Load(ckpt);
        using var ort = ImageClassifier.Load(onnx);
        Assert.StartsWith("ONNX Runtime", ort.Engine);
        Assert.Equal(torch.ClassNames, ort.ClassNames);
        Assert.Equal(torch.Card.Preprocessing.Describe(), ort.Card.Preprocessing.Describe());

        int size = torch.Card.Preprocessing.Shape.Size;
        var pixels = new byte[images.Length * size];
        for (int i = 0; i < images.Length; i++)
            H2T.Data.ImageDecoder.Decode(images[i], torch.Card.Preprocessing.Plan, pixels.AsSpan(i * size, size));
        var a = torch.Logits(pixels, images.Length);
        var b = ort.Logits(pixels, images.Length);
        double scale = a.Max(Math.Abs), worst = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
        output.WriteLine(
            $"{architecture} + {head}: max |logit| {scale:G4}, max difference {worst:G3} (relative " +
            $"{worst / scale:G3}), {result.Nodes} nodes, {result.Bytes / 1e6:F1} MB");
        Assert.True(worst <= 1e-4 * scale,
            $"{architecture} + {head}: ONNX Runtime differs from TorchSharp by {worst:G3}, {worst / scale:G3} of the " +
            $"largest logit {scale:G4}");

        int k = torch.ClassNames.Count;
        for (int i = 0; i < images.Length; i++)
            Assert.True(ArgMax(a.AsSpan(i * k, k)) == ArgMax(b.AsSpan(i * k, k)), $"{images[i]}: top-1 differs");
        OnnxChecker.AssertValid(onnx);
    }

    static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    [Fact]
    public void TheModelSaysWhatItExpects()
    {
        var ckpt = InferenceFixtures.Checkpoint(dir.Path, "resnet8", "linear", seed: 3);
        var onnx = Path.Combine(dir.Path, "m.onnx");
        OnnxExporter.Export(ckpt, onnx);
        var model = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        Assert.Equal(OnnxExporter.Opset, model.OpsetImport.Single().Version);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "BatchNormalization");
        var input = model.Graph.Input.Single();
        Assert.Equal("image", input.Name);
        Assert.Equal("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal([3L, 32, 32], input.Type.TensorType.Shape.Dim.Skip(1).Select(d => d.DimValue));
        var meta = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(InferenceFixtures.CifarClasses),
            meta[ModelCard.MetadataKeys.ClassNames]);
        Assert.Contains("\"resize_shorter\": 0", meta[ModelCard.MetadataKeys.Preprocessing]);
        Assert.Equal("resnet8", meta[ModelCard.MetadataKeys.Architecture]);
        // The batch really is dynamic: 1 and 7 images in one session.
        using var ort = ImageClassifier.Load(onnx);
        Assert.Equal(10, ort.Logits(new byte[3 * 32 * 32], 1).Length);
        Assert.Equal(70, ort.Logits(new byte[7 * 3 * 32 * 32], 7).Length);
    }
}

/// <summary>Debian's python3-onnx <c>onnx.checker.check_model(full_check=True)</c>: an independent reader of the
/// file.</summary>
internal static class OnnxChecker
{
    public static void AssertValid(string path)
    {
        if (WhyNot is { } why)
        {
            if (Environment.GetEnvironmentVariable("H2T_REQUIRE_PYTORCH") == "1") Assert.Fail(why);
            return; // the ONNX Runtime check above still ran
        }
        var (rc, stdout, err) = PyTorchFixtures.Run(["-c",
            "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); " +
            "print(m.ir_version, m.opset_import[0].version)", path]);
        Assert.True(rc == 0, $"onnx.checker rejects {path}: {err}");
        Assert.Equal("8 17", stdout.Trim());
    }

    static readonly Lazy<string?> Missing = new(() =>
    {
        if (!File.Exists(PyTorchFixtures.Python)) return $"{PyTorchFixtures.Python} is absent";
        var (rc, _, err) = PyTorchFixtures.Run(["-c", "import onnx"]);
        return rc == 0 ? null : $"python3-onnx is not installed ({err.Trim().Split('\n').LastOrDefault()})";
    });

    public static string? WhyNot => Missing.Value;
}
