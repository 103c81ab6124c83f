using H2T.Runs;
using H2T.Onnx;
using H2T.Data;
using H2T.Inference;
using H2T.Models;
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
        { "vit_micro", "linear" }, { "vit_micro", "cosine" },
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

    /// <summary>Held to 1e-5 (vit_micro's fixture above only to 1e-4: with its drawn norms and class token its logits
    /// move by ~1e-5 relative under TorchSharp alone when the pixels are normalised in another order). The ViT options
    /// no registered small arch has (registers, layer scale, ln_pre, QuickGELU,
    /// patch-only position embeddings, no patch bias), on a tiny network built from its config, exported at an image
    /// size whose patch grid is not the built one (so the position embeddings are resampled as the forward does).
    /// </summary>
    [Theory]
    [InlineData(32, "linear", VitActivation.QuickGelu)]
    [InlineData(24, "cosine", VitActivation.QuickGelu)]
    [InlineData(32, "linear", VitActivation.Gelu)]
    public void AViTWithRegistersAndLayerScaleMatches(int size, string headKind, VitActivation activation)
    {
        var config = new VisionTransformerConfig(4, 32, 24, 2, 2, 40, PreNorm: true, Activation:
            activation, LayerScale: 1e-5, RegisterTokens: 2, Eps: 1e-5, NoEmbedClass: true,
            PatchBias: false);
        TorchSharp.torch.manual_seed(11);
        using var vit = new VisionTransformer("vit_custom", config);
        using var head = ModelFactory.CreateHead(headKind, vit, 10);
        using (TorchSharp.torch.no_grad())
            foreach (var (name, p) in vit.named_parameters())
                if (!name.Contains("self_attention", StringComparison.Ordinal) && !name.Contains("mlp.",
                    StringComparison.Ordinal) && name != "conv_proj.weight")
                    p.copy_(TorchSharp.torch.randn(p.shape) * 0.3 + (name.EndsWith("weight", StringComparison.Ordinal)
                        ? 1 : 0));
        vit.eval();
        head.eval();
        var pre = new ImagePreprocessing(3, size, size, 0, [0.5f, 0.45f, 0.4f], [0.25f, 0.2f, 0.3f]);
        var card = new ModelCard("vit_custom", head.Kind, "cifar10-jpg", InferenceFixtures.CifarClasses, pre, "fp32",
            "stage1");
        var onnx = Path.Combine(dir.Path, "custom.onnx");
        OnnxExporter.Export(vit, head, card, onnx);

        const int count = 6;
        var gen = new Random(5);
        var pixels = new byte[count * 3 * size * size];
        gen.NextBytes(pixels);
        var a = TorchLogits(vit, head, pre, pixels, count);
        using var ort = new OnnxModelRunner(onnx, 1);
        var b = ort.Logits(pixels, count);
        double scale = a.Max(Math.Abs), worst = a.Zip(b, (u, v) => Math.Abs(u - v)).Max();
        output.WriteLine($"vit_custom {size} px + {headKind}: max |logit| {scale:G4}, max difference {worst:G3} " +
            $"(relative {worst / scale:G3})");
        Assert.True(worst <= 1e-5 * scale, $"ONNX Runtime differs from TorchSharp by {worst / scale:G3} relative");
        OnnxChecker.AssertValid(onnx);
    }

    /// <summary>TorchSharp's logits with the pixels normalised by the graph's own ops: (x / 255 - mean) / std.
    /// </summary>
    static float[] TorchLogits(Backbone backbone, ClassifierHead head, ImagePreprocessing pre, byte[] pixels,
        int count)
    {
        backbone.eval();
        head.eval();
        using var _ = TorchSharp.torch.no_grad();
        using var scope = TorchSharp.torch.NewDisposeScope();
        var x = TorchSharp.torch.tensor(pixels, [count, pre.Channels, pre.Height, pre.Width])
            .to(TorchSharp.torch.float32) / 255f;
        var mean = TorchSharp.torch.tensor(pre.Mean).reshape(1, pre.Channels, 1, 1);
        var std = TorchSharp.torch.tensor(pre.Std).reshape(1, pre.Channels, 1, 1);
        return head.call(backbone.call((x - mean) / std)).data<float>().ToArray();
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
