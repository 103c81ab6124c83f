using Google.Protobuf;
using H2T.Data;
using H2T.Onnx;
using H2T.Inference;
using H2T.Interop;
using H2T.Models;
using H2T.Tests.Data;
using H2T.Tests.Inference;
using H2T.Tests.Training;
using Microsoft.ML.OnnxRuntime;
using DenseTensorF = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using Onnx;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

using H2T.Tests.Interop;

namespace H2T.Tests.Onnx;

/// <summary>
/// Pretrained weights from ONNX graphs: the ImageNet ResNet-18 CNTK exported (ML.NET's NuGet package, restored by the
/// build) against ONNX Runtime running that file; torchvision's models as torch.onnx.export writes them; our own
/// export.
/// </summary>
public sealed class OnnxImportTests(ITestOutputHelper output)
{
    /// <summary>n real CIFAR-10 test images decoded at size x size (bilinear), CHW bytes.</summary>
    static byte[][] Images(int n, int size)
    {
        var plan = new DecodePlan(new ImageShape(3, size, size));
        return [.. InferenceFixtures.TestImages().Where((_, i) => i % (100 / n) == 0).Take(n).Select(p =>
        {
            var chw = new byte[3 * size * size];
            ImageDecoder.Decode(p, plan, chw);
            return chw;
        })];
    }

    /// <summary>The images as the CNTK network's input: BGR in 0..255 minus the channel mean (<paramref
    /// name="bgrMean"/>).</summary>
    static float[] CntkInput(byte[] chw, int size, float[] bgrMean)
    {
        int hw = size * size;
        var x = new float[3 * hw];
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < hw; i++) x[j * hw + i] = chw[(2 - j) * hw + i] - bgrMean[j];
        return x;
    }

    /// <summary>The same images as our network takes them: RGB, (x / 255 - mean) / std.</summary>
    static Tensor OurInput(byte[][] images, int size, Normalization norm)
    {
        using var bytes = tensor(images.SelectMany(b => b).ToArray(), [images.Length, 3, size, size]);
        using var f = bytes.to(ScalarType.Float32).div_(255);
        using var mean = tensor(norm.Mean, [1, 3, 1, 1]);
        using var std = tensor(norm.Std, [1, 3, 1, 1]);
        return (f - mean) / std;
    }

    static float[] OrtRun(InferenceSession session, string outputName, float[] x, int size)
    {
        var input = new DenseTensorF(x, [1, 3, size, size]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.First(), input)],
            [outputName]);
        return [.. results[0].AsEnumerable<float>()];
    }

    static float MaxAbs(float[] a) => a.Max(Math.Abs);

    [Fact]
    public void TheNuGetResNet18EqualsOnnxRuntimeRunningTheShippedFileOnRealImages()
    {
        var source = PretrainedBackbone.Resolve("mlnet:resnet18");
        Assert.Equal("resnet18_cntk", source.Architecture);
        Assert.Equal([2, 1, 0], source.ChannelOrder!);
        // The mean image's channel means (BGR 103 / 116 / 123 in 0..255), std 1 / 255: no division.
        Assert.InRange(source.Norm!.Mean[0] * 255, 122.5, 124);
        Assert.InRange(source.Norm.Mean[2] * 255, 102.5, 104);
        Assert.All(source.Norm.Std, s => Assert.Equal(1f / 255, s, 6));

        using var backbone = ModelFactory.CreateBackbone("resnet18_cntk", 3);
        var lines = PretrainedBackbone.Load(source, backbone, 10);
        foreach (var l in lines) output.WriteLine(l);
        // 22 Conv, 22 BatchNorm x 4
        Assert.Contains(lines, l => l.StartsWith("pretrained backbone: 110 tensor(s) loaded",
            StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("reordered to take RGB", StringComparison.Ordinal));
        backbone.eval();
        using var folded = backbone.FoldedForInference()!;
        float[] bgrMean = [source.Norm.Mean[2] * 255, source.Norm.Mean[1] * 255, source.Norm.Mean[0] * 255];

        // 224 px: the file exactly as shipped, its pooled 512-d output.
        const int size = 224;
        var images = Images(4, size);
        using var session = new InferenceSession(source.Path);
        var outputName = session.OutputMetadata.Keys.Single();
        using var _ = no_grad();
        using var x = OurInput(images, size, source.Norm);
        foreach (var (net, what) in new[] { (backbone, "eval"), ((Backbone)folded, "folded") })
        {
            using var map = net.call(x);
            using var pooled = map.mean([2, 3]);
            for (int i = 0; i < images.Length; i++)
            {
                var want = OrtRun(session, outputName, CntkInput(images[i], size, bgrMean), size);
                var got = pooled[i].data<float>().ToArray();
                float diff = want.Zip(got, (a, b) => Math.Abs(a - b)).Max(), scale = MaxAbs(want);
                output.WriteLine(
                    $"{what} image {i}: max |ours - ONNX Runtime| {diff:E2} of {scale:F3} (relative " +
                        $"{diff / scale:E2})");
                Assert.True(diff <= 1e-4 * scale, $"{what} image {i}: {diff} of {scale}");
            }
        }
    }

    /// <summary>Pooled features of the images under split/class/ of the committed CIFAR-10 sample, at 112 px.</summary>
    static (Tensor Features, Tensor Labels) Features(Backbone net, Normalization norm, string split)
    {
        const int size = 112;
        var files = InferenceFixtures.CifarClasses.SelectMany((c,
            i) => Directory.GetFiles(Path.Combine(DataTestFiles.CifarJpgSample, split,
            c)).Order(StringComparer.Ordinal).Select(f => (f, i))).ToList();
        var plan = new DecodePlan(new ImageShape(3, size, size));
        var images = files.Select(f => { var b = new byte[3 * size * size]; ImageDecoder.Decode(f.f, plan,
            b); return b; }).ToArray();
        using var _ = no_grad();
        using var x = OurInput(images, size, norm);
        using var map = net.call(x);
        return (map.mean([2, 3]), tensor(files.Select(f => (long)f.i).ToArray()));
    }

    /// <summary>Test accuracy of a logistic regression on standardised features (full batch, Adam, weight
    /// decay).</summary>
    static double Probe(Tensor train, Tensor trainY, Tensor test, Tensor testY)
    {
        using var scope = NewDisposeScope();
        var mean = train.mean([0], keepdim: true);
        var std = train.std(0, keepdim: true) + 1e-6;
        var a = (train - mean) / std;
        var b = (test - mean) / std;
        manual_seed(0);
        using var linear = nn.Linear(a.shape[1], 10);
        using var opt = optim.Adam(linear.parameters(), 0.01, weight_decay: 1e-3);
        for (int step = 0; step < 300; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            nn.functional.cross_entropy(linear.call(a), trainY).backward();
            opt.step();
        }
        using var __ = no_grad();
        return linear.call(b).argmax(1).eq(testY).to(ScalarType.Float32).mean().item<float>() * 100;
    }

    [Fact]
    public void ALinearProbeOnTheNuGetWeightsBeatsTheSameProbeOnRandomInitByAWideMargin()
    {
        // 200 training and 100 test images of the committed CIFAR-10 sample, at 112 px, frozen features.
        var source = PretrainedBackbone.Resolve("mlnet:resnet18");
        double Accuracy(bool pretrained)
        {
            manual_seed(1);
            using var net = ModelFactory.CreateBackbone("resnet18_cntk", 3);
            if (pretrained) PretrainedBackbone.Load(source, net, 10);
            net.eval();
            var (train, trainY) = Features(net, source.Norm!, "train");
            var (test, testY) = Features(net, source.Norm!, "test");
            using (train) using (trainY) using (test) using (testY)
                return Probe(train, trainY, test, testY);
        }
        double withWeights = Accuracy(true), random = Accuracy(false);
        output.WriteLine(
            $"linear probe, 200 train / 100 test CIFAR-10 images at 112 px: ImageNet weights {withWeights:F1}%, " +
            $"random init {random:F1}%");
        Assert.True(withWeights >= random + 15, $"pretrained {withWeights}% vs random {random}%");
    }

    [Fact]
    public void CntkPaddingMatchesOnnxRuntimeAtAnOddSize()
    {
        // 112 px makes layer4's input 7x7, where the file's fixed pads (1 before, 0 after) no longer add up (its
        // strided 3x3 and 1x1 branches would disagree). CNTK's rule is "same" padding with the extra pixel before,
        // ONNX's auto_pad SAME_LOWER, which at 224 px gives exactly the file's pads. The shipped graph with that,
        // its input made symbolic and its last Relu as output, run by ONNX Runtime.
        var source = PretrainedBackbone.Resolve("mlnet:resnet18");
        var model = OnnxResNetReader.Parse(source.Path);
        var g = model.Graph;
        var pool = g.Node.Single(n => n.OpType == "AveragePool");
        foreach (var n in g.Node.Where(n => n.OpType is "Conv" or "MaxPool"))
        {
            var pads = n.Attribute.Single(a => a.Name == "pads");
            n.Attribute.Remove(pads);
            n.Attribute.Single(a => a.Name == "auto_pad").S = ByteString.CopyFromUtf8("SAME_LOWER");
        }
        foreach (var d in g.Input[0].Type.TensorType.Shape.Dim.Skip(2)) d.DimParam = "side";
        g.Node.Remove(pool);
        g.Output.Clear();
        g.Output.Add(new ValueInfoProto { Name = pool.Input[0],
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        using var session = new InferenceSession(model.ToByteArray());

        using var backbone = ModelFactory.CreateBackbone("resnet18_cntk", 3);
        PretrainedBackbone.Load(source, backbone, 10);
        backbone.eval();
        using var folded = backbone.FoldedForInference()!;
        const int size = 112;
        var images = Images(2, size);
        float[] bgrMean = [source.Norm!.Mean[2] * 255, source.Norm.Mean[1] * 255, source.Norm.Mean[0] * 255];
        using var _ = no_grad();
        using var x = OurInput(images, size, source.Norm);
        foreach (var (net, what) in new[] { (backbone, "eval"), ((Backbone)folded, "folded") })
        {
            using var map = net.call(x).contiguous();
            Assert.Equal([2L, 512, 4, 4], map.shape);
            for (int i = 0; i < images.Length; i++)
            {
                var want = OrtRun(session, pool.Input[0], CntkInput(images[i], size, bgrMean), size);
                var got = map[i].contiguous().data<float>().ToArray();
                Assert.Equal(want.Length, got.Length);
                float diff = want.Zip(got, (a, b) => Math.Abs(a - b)).Max(), scale = MaxAbs(want);
                output.WriteLine($"{what} 112 px image {i}: max |ours - ONNX Runtime| {diff:E2} of {scale:F3}");
                Assert.True(diff <= 1e-4 * scale, $"{what} image {i}: {diff} of {scale}");
            }
        }
    }

    [Fact]
    public void OurOwnExportRoundTrips()
    {
        using var dir = new TempDir();
        foreach (var arch in new[] { "resnet10", "resnet18_cntk", "resnet50" })
        {
            var pre = new ImagePreprocessing(3, 48, 48, 0, [0.5f, 0.4f, 0.3f], [0.2f, 0.25f, 0.3f]);
            var ckpt = InferenceFixtures.Checkpoint(dir.Path, arch, "linear", seed: 3, pre);
            var onnx = Path.Combine(dir.Path, arch + ".onnx");
            OnnxExporter.Export(ckpt, onnx);
            using var original = H2T.Runs.Checkpoint.Open(ckpt);
            using var imported = ModelFactory.CreateBackbone(arch, 3);
            var source = PretrainedBackbone.Resolve(onnx);
            PretrainedBackbone.Load(source, imported, 10);
            var norm = PretrainedBackbone.InputNormalization(source, imported)!;
            Assert.Equal(pre.Mean, norm.Mean, (a, b) => Math.Abs(a - b) < 1e-6);
            Assert.Equal(pre.Std, norm.Std, (a, b) => Math.Abs(a - b) < 1e-6);
            original.Backbone.eval();
            imported.eval();
            using var _ = no_grad();
            using var x = randn(2, 3, 47, 47); // odd sizes all the way down
            using var want = original.Backbone.call(x);
            using var got = imported.call(x);
            float scale = want.abs().max().item<float>(), diff = (want - got).abs().max().item<float>();
            output.WriteLine($"{arch}: max |imported - original| {diff:E2} of {scale:F3}");
            Assert.True(diff <= 1e-4 * scale, $"{arch}: {diff} of {scale}");
        }
    }

    [Fact]
    public void AGraphThatIsNotAResNetNamesTheFirstNodeThatDoesNotFit()
    {
        using var dir = new TempDir();
        var ckpt = InferenceFixtures.Checkpoint(dir.Path, "resnet10", "linear", seed: 4, new ImagePreprocessing(3, 32,
            32, 0, [0.5f, 0.5f, 0.5f], [0.25f, 0.25f, 0.25f]));
        var onnx = Path.Combine(dir.Path, "m.onnx");
        OnnxExporter.Export(ckpt, onnx);

        ModelProto Edit(Action<GraphProto> change)
        {
            var m = OnnxResNetReader.Parse(onnx);
            change(m.Graph);
            return m;
        }
        string Fail(ModelProto m, string name)
        {
            var path = Path.Combine(dir.Path, name);
            File.WriteAllBytes(path, m.ToByteArray());
            using var backbone = ModelFactory.CreateBackbone("resnet10", 3);
            return Assert.ThrowsAny<Exception>(() => PretrainedBackbone.Load(path, backbone, 10)).Message;
        }

        // A Sigmoid where the third Relu was.
        var sigmoid = Edit(g =>
        {
            var relus = g.Node.Select((n, i) => (n, i)).Where(p => p.n.OpType == "Relu").ToList();
            relus[2].n.OpType = "Sigmoid";
        });
        int at = sigmoid.Graph.Node.ToList().FindIndex(n => n.OpType == "Sigmoid");
        var message = Fail(sigmoid, "sigmoid.onnx");
        output.WriteLine(message);
        Assert.Contains($"node {at}", message);
        Assert.Contains("(Sigmoid", message);

        // A 5x5 convolution in a block.
        var wide = Edit(g => g.Node.Where(n => n.OpType == "Conv").Skip(1).First().Attribute.First(a =>
            a.Name == "kernel_shape").Ints[0] = 5);
        message = Fail(wide, "wide.onnx");
        output.WriteLine(message);
        Assert.Contains("does not fit a ResNet", message);

        // ResNet v1's bottleneck strides on its first 1x1, not on the 3x3: same shapes, other numbers, refused.
        var ckpt50 = InferenceFixtures.Checkpoint(dir.Path, "resnet50", "linear", seed: 5, new ImagePreprocessing(3, 32,
            32, 0, [0.5f, 0.5f, 0.5f], [0.25f, 0.25f, 0.25f]));
        var onnx50 = Path.Combine(dir.Path, "r50.onnx");
        OnnxExporter.Export(ckpt50, onnx50);
        var v1 = OnnxResNetReader.Parse(onnx50);
        var convs = v1.Graph.Node.Where(n => n.OpType == "Conv").ToList();
        var strided = convs.First(n => n.Attribute.First(a => a.Name == "strides").Ints[0] == 2 &&
            n.Attribute.First(a => a.Name == "kernel_shape").Ints[0] == 3 && convs.IndexOf(n) > 0);
        var first = convs[convs.IndexOf(strided) - 1];
        foreach (var (n, v) in new[] { (strided, 1L), (first, 2L) })
        {
            var st = n.Attribute.First(a => a.Name == "strides");
            st.Ints[0] = v;
            st.Ints[1] = v;
        }
        File.WriteAllBytes(Path.Combine(dir.Path, "v1.onnx"), v1.ToByteArray());
        using (var r50 = ModelFactory.CreateBackbone("resnet50", 3))
        {
            message = Assert.ThrowsAny<Exception>(() => PretrainedBackbone.Load(Path.Combine(dir.Path, "v1.onnx"), r50,
                10)).Message;
            output.WriteLine(message);
            Assert.Contains("stride 2, where layer2.0.conv1 has stride 1", message);
        }

        // Blocks per stage that no architecture has: resnet10's graph into resnet18.
        using var other = ModelFactory.CreateBackbone("resnet18", 3);
        message = Assert.Throws<H2T.Settings.ConfigException>(() => PretrainedBackbone.Load(onnx, other, 10)).Message;
        Assert.Contains("is a resnet10", message);
        Assert.Contains("--backbone resnet10", message);

        // Not ONNX at all.
        var junk = dir.Write("junk.onnx", [1, 2, 3, 4, 5]);
        using var b10 = ModelFactory.CreateBackbone("resnet10", 3);
        message = Assert.ThrowsAny<Exception>(() => PretrainedBackbone.Load(junk, b10, 10)).Message;
        Assert.Contains("junk.onnx: not an ONNX model", message);
    }

    [RequiresPyTorchTheory]
    [InlineData("resnet18.onnx", "resnet18", true)]
    [InlineData("resnet18_bn.onnx", "resnet18", false)]
    [InlineData("resnet50.onnx", "resnet50", true)]
    public void TorchOnnxExportsOfTorchvisionGiveTorchvisionsLogits(string file, string arch, bool folded)
    {
        var dir = PyTorchFixtures.TorchvisionFolder();
        using var backbone = ModelFactory.CreateBackbone(arch, 3);
        var source = PretrainedBackbone.Resolve(Path.Combine(dir, file));
        var lines = PretrainedBackbone.Load(source, backbone, 10);
        foreach (var l in lines) output.WriteLine(l);
        Assert.Equal(folded, lines.Any(l => l.Contains("folded into its convolutions", StringComparison.Ordinal)));
        Assert.Equal(Normalization.ImageNet.Mean, PretrainedBackbone.InputNormalization(source, backbone)!.Mean);

        using var logits = PretrainedBackboneTests.TorchvisionLogits(backbone, dir, arch, file, output);
    }
}
