using System.Collections;
using System.Text.Json;
using H2T.Runs;
using H2T.Data;
using H2T.Interop;
using H2T.Settings;
using H2T.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using H2T.Tests.Cli;
using H2T.Tests.Data;
using H2T.Tests.Onnx;
using H2T.Tests.Inference;
using H2T.Tests.Interop;

namespace H2T.Tests.Training;

/// <summary>
/// PyTorch interop on real files written by PyTorch 1.13 with the save code of the authors, MiSLAS and RIDE
/// (Fixtures/make_pytorch_fixtures.py): each layout imports into our network and reproduces PyTorch's eval logits on
/// real Fashion-MNIST images; our export loads back into the PyTorch network with the same logits.
/// </summary>
public sealed class PyTorchCheckpointTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir dir = new();

    static string Fixture(string name) => PyTorchFixtures.Committed(name);

    DatasetSplits Splits() => DatasetCatalog.Load(set.Config());

    static Tensor Io(string key) => (Tensor)TorchSaveReader.ReadDict(Fixture("reference_resnet8_io.pth"))[key]!;

    static Tensor Logits(string checkpoint, Tensor input)
    {
        using var models = Checkpoint.Open(checkpoint);
        var (_, backbone, head) = models;
        backbone.eval();
        head.eval();
        using var _ = no_grad();
        using var fmap = backbone.call(input);
        return head.call(fmap);
    }

    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var scale = expected.abs().max().item<float>();
        var diff = (actual - expected).abs().max().item<float>();
        Assert.True(diff <= 1e-4 * Math.Max(1, scale), $"{what}: max |diff| {diff} (logits up to {scale})");
    }

    [Theory]
    [InlineData("reference_resnet8.pth.tar", "resnet8", "linear", "logits", "H2T / MiSLAS")]
    [InlineData("reference_resnet8_single.pth.tar", "resnet8", "linear", "logits", "H2T / MiSLAS")]
    [InlineData("reference_resnet8_legacy.pth.tar", "resnet8", "linear", "logits", "H2T / MiSLAS")]
    [InlineData("mislas_stage2_resnet8.pth.tar", "resnet8", "linear", "lws_logits", "H2T / MiSLAS")]
    [InlineData("ride_resnet8.pth", "ride_resnet8", "linear", "ride_logits",
        "RIDE (state_dict with backbone.*, arch RideModel)")]
    public void EachLayoutImportsAndReproducesPyTorchsLogitsOnRealImages(string file, string backbone,
        string classifier, string expected, string layout)
    {
        var splits = Splits();
        var ckpt = Path.Combine(dir.Path, "imported.ckpt");
        var result = PyTorchCheckpoint.Import(Fixture(file), ckpt, backbone, classifier, splits, set.Config());
        Assert.StartsWith(layout, result.Layout);
        Assert.Contains(result.Report, l => l.StartsWith("backbone: ",
            StringComparison.Ordinal) && l.Contains("tensor(s) loaded", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Report, l => l.Contains("missing",
            StringComparison.Ordinal) || l.Contains("not in our model", StringComparison.Ordinal));
        Assert.Equal(backbone, result.Meta.Architecture);
        Assert.EndsWith(file, result.Meta.ImportedFrom);
        Assert.Equal(splits.TrainClassCounts, result.Meta.ClassCounts);
        if (file.StartsWith("mislas_stage2", StringComparison.Ordinal))
        {
            Assert.Equal(("stage2", "lws"), (result.Meta.Stage, result.Meta.Classifier));
            Assert.Contains(result.Report, l => l.Contains("learned_norm", StringComparison.Ordinal));
        }
        else Assert.Equal("stage1", result.Meta.Stage);

        using var input = Io("input");
        using var want = Io(expected);
        using var logits = Logits(ckpt, input);
        AssertClose(want, logits, file);
    }

    [Fact]
    public void ImportPrintsWhatItMappedAndAMismatchIsRefusedWithEveryNameAndBothShapes()
    {
        var ckpt = Path.Combine(dir.Path, "x.ckpt");
        var (rc, output) = CliRunner.Run("import", Fixture("reference_resnet8.pth.tar"), "--dataset", "fashion-mnist",
            "--data", set.Path,
            "--imb-factor", "10", "--backbone", "resnet8", "--out", ckpt);
        Assert.True(rc == 0, output);
        output = output.ReplaceLineEndings("");
        Assert.Contains("layout: H2T / MiSLAS (state_dict_model + state_dict_classifier)", output);
        Assert.Contains("backbone: 42 tensor(s) loaded", output);
        Assert.Contains("classifier: 2 tensor(s) loaded", output);

        // Another architecture: refused by name, nothing written.
        File.Delete(ckpt);
        var splits = Splits();
        var e = Assert.Throws<ConfigException>(() => PyTorchCheckpoint.Import(Fixture("reference_resnet8.pth.tar"),
            ckpt, "resnet20", "linear", splits, set.Config()));
        Assert.Contains("missing 'layer1.1.conv1.weight'", e.Message);
        Assert.False(File.Exists(ckpt));

        // A file without some tensors: strict refuses and names them; --allow-missing lists what stays initialised.
        var partial = Altered("partial.pth", c =>
        {
            foreach (var k in c.Backbone.Keys.Where(k => k.StartsWith("bn1.",
                StringComparison.Ordinal)).ToList()) c.Backbone.Remove(k);
        });
        e = Assert.Throws<ConfigException>(() => PyTorchCheckpoint.Import(partial, ckpt, "resnet8", "linear", splits,
            set.Config()));
        Assert.Contains("missing 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var'", e.Message);
        Assert.Contains("--allow-missing", e.Message);
        (rc, output) = CliRunner.Run("import", partial, "--dataset", "fashion-mnist", "--data", set.Path,
            "--imb-factor", "10",
            "--backbone", "resnet8", "--out", ckpt, "--allow-missing");
        Assert.True(rc == 0, output);
        Assert.Contains(
            "backbone: missing from the file, left as initialised: 'bn1.weight', 'bn1.bias', 'bn1.running_mean', " +
            "'bn1.running_var'", output.ReplaceLineEndings(""));

        // A 7-class classifier against a 10-class dataset: the key and both shapes.
        var bad = Altered("bad.pth", c =>
        {
            c.Classifier["fc.weight"] = zeros(7, 64);
            c.Classifier["fc.bias"] = zeros(7);
        });
        e = Assert.Throws<ConfigException>(() => PyTorchCheckpoint.Import(bad, ckpt, "resnet8", "linear", splits,
            set.Config()));
        Assert.Contains("'fc.weight' is [7, 64] in the file, [10, 64] in our model", e.Message);
        Assert.Contains("class count", e.Message);
    }

    /// <summary>The reference fixture with <paramref name="alter"/> applied, pickled again: a deliberately broken
    /// file.</summary>
    string Altered(string name, Action<PyTorchWeights> alter)
    {
        var path = Path.Combine(dir.Path, name);
        using var c = PyTorchWeights.Read(Fixture("reference_resnet8.pth.tar"));
        alter(c);
        var table = new Hashtable { ["state_dict_model"] = c.Backbone, ["state_dict_classifier"] = c.Classifier };
        using var f = File.Create(path);
        PyTorchPickler.PickleStateDict(f, table);
        return path;
    }

    [Fact]
    public void ExportRoundTripsThroughPyTorchsFormat()
    {
        var splits = Splits();
        var ckpt = Path.Combine(dir.Path, "imported.ckpt");
        PyTorchCheckpoint.Import(Fixture("reference_resnet8.pth.tar"), ckpt, "resnet8", "linear", splits, set.Config());
        var exported = Path.Combine(dir.Path, "exported.pth");
        PyTorchCheckpoint.Export(ckpt, exported);

        // Read back with our reader: the same tensors, no prefixes, the metadata kept.
        using (var back = PyTorchWeights.Read(exported))
        using (var original = PyTorchWeights.Read(Fixture("reference_resnet8.pth.tar")))
        {
            Assert.Equal(original.Backbone.Keys.Order(), back.Backbone.Keys.Order());
            foreach (var (k,
                t) in original.Backbone) Assert.True(t.to_type(ScalarType.Float64).allclose(back.Backbone[k].to_type(
                ScalarType.Float64)), k);
            foreach (var (k, t) in original.Classifier) Assert.True(t.allclose(back.Classifier[k]), k);
        }
    }

    [RequiresPyTorchFact]
    public void AnExportLoadsIntoTheReferencesPyTorchNetworkWithOurLogitsOnRealImages()
    {
        var splits = Splits();
        var ckpt = Path.Combine(dir.Path, "imported.ckpt");
        PyTorchCheckpoint.Import(Fixture("reference_resnet8.pth.tar"), ckpt, "resnet8", "linear", splits, set.Config());
        var exported = Path.Combine(dir.Path, "exported.pth");
        var (rc, output) = CliRunner.Run("export", ckpt, "--out", exported);
        Assert.True(rc == 0, output);
        var (prc, stdout, stderr) = PyTorchFixtures.Run([PyTorchFixtures.Script, "--check", exported,
            Fixture("reference_resnet8_io.pth")]);
        Assert.True(prc == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var keys = doc.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetString()).ToList();
        Assert.Equal(["best_acc1", "epoch", "h2t_meta", "state_dict_classifier", "state_dict_model"], keys);
        var torchLogits = doc.RootElement.GetProperty("logits").EnumerateArray().Select(r =>
            r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        using var input = Io("input");
        using var ours = Logits(ckpt, input);
        using var theirs = tensor(torchLogits.SelectMany(r => r).ToArray(), [torchLogits.Length,
            torchLogits[0].Length]);
        AssertClose(theirs, ours, "export read by PyTorch");
    }

    public void Dispose()
    {
        set.Dispose();
        dir.Dispose();
    }
}
