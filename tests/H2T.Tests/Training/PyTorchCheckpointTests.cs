using System.Diagnostics;
using System.Text.Json;
using H2T.Data;
using H2T.Models;
using H2T.Tests.Data;
using H2T.Training;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace H2T.Tests.Training;

/// <summary>
/// PyTorch interop on real files written by PyTorch 1.13 (Fixtures/make_reference_checkpoint.py): a reference-layout
/// checkpoint with DataParallel prefixes imports into our ResNet + classifier and reproduces PyTorch's logits; our
/// export loads back into the PyTorch network with the same logits.
/// </summary>
public sealed class PyTorchCheckpointTests : IDisposable
{
    readonly TinyLongTailedSet set = new();
    readonly TempDir dir = new();

    static string Fixture(string name) => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Training", "Fixtures", name);

    DatasetSplits Splits() => DatasetCatalog.Load(set.Config());

    static (Tensor Input, Tensor Logits) ReferenceIo()
    {
        var io = PyTorchUnpickler.UnpickleStateDict(Fixture("reference_resnet8_io.pth"));
        return ((Tensor)io["input"]!, (Tensor)io["logits"]!);
    }

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

    [Fact]
    public void TheReferenceLayoutImportsAndReproducesPyTorchsLogits()
    {
        var splits = Splits();
        var ckpt = Path.Combine(dir.Path, "imported.ckpt");
        var meta = PyTorchCheckpoint.Import(Fixture("reference_resnet8.pth.tar"), ckpt, "resnet8", "linear", splits, set.Config());
        Assert.Equal("resnet8", meta.Architecture);
        Assert.Equal(5, meta.TotalEpochs);
        Assert.EndsWith("reference_resnet8.pth.tar", meta.ImportedFrom);
        Assert.Equal(splits.TrainClassCounts, meta.ClassCounts);

        var (input, expected) = ReferenceIo();
        using var logits = Logits(ckpt, input);
        Assert.True(allclose(logits, expected, rtol: 1e-4, atol: 1e-5), $"max |diff| {(logits - expected).abs().max().item<float>()}");
        input.Dispose();
        expected.Dispose();
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
        using (var back = PyTorchCheckpoint.Read(exported))
        using (var original = PyTorchCheckpoint.Read(Fixture("reference_resnet8.pth.tar")))
        {
            Assert.Equal(original.Backbone.Keys.Order(), back.Backbone.Keys.Where(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal) || original.Backbone.ContainsKey(k)).Order());
            foreach (var (k, t) in original.Backbone) Assert.True(t.to_type(ScalarType.Float64).allclose(back.Backbone[k].to_type(ScalarType.Float64)), k);
            foreach (var (k, t) in original.Classifier) Assert.True(t.allclose(back.Classifier[k]), k);
        }

        // And with PyTorch itself, when Debian's python3-torch is installed (it is on the CI image).
        var python = "/usr/bin/python3";
        if (!File.Exists(python) || !PythonHasTorch(python)) return;
        var psi = new ProcessStartInfo(python, [Fixture("make_reference_checkpoint.py"), "--check", exported, Fixture("reference_resnet8_io.pth")])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEnd();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var keys = doc.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetString()).ToList();
        Assert.Equal(["best_acc1", "epoch", "h2t_meta", "state_dict_classifier", "state_dict_model"], keys);
        var torchLogits = doc.RootElement.GetProperty("logits").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var (input, _) = ReferenceIo();
        using var ours = Logits(ckpt, input);
        using var theirs = tensor(torchLogits.SelectMany(r => r).ToArray(), [torchLogits.Length, torchLogits[0].Length]);
        Assert.True(allclose(ours, theirs, rtol: 1e-4, atol: 1e-5));
    }

    static bool PythonHasTorch(string python)
    {
        using var p = Process.Start(new ProcessStartInfo(python, ["-c", "import torch"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    [Fact]
    public void AMismatchedModelIsRefusedWithTheKeyAndShapes()
    {
        var splits = Splits();
        var ckpt = Path.Combine(dir.Path, "x.ckpt");
        var e = Assert.Throws<ConfigException>(() => PyTorchCheckpoint.Import(Fixture("reference_resnet8.pth.tar"), ckpt, "resnet20", "linear", splits, set.Config()));
        Assert.Contains("missing 'layer1.1.conv1.weight'", e.Message);
        Assert.False(File.Exists(ckpt));

        // A 100-class dataset against a 10-class classifier: the fc shape is named.
        var bad = Path.Combine(dir.Path, "bad.pth");
        using (var c = PyTorchCheckpoint.Read(Fixture("reference_resnet8.pth.tar")))
        {
            c.Classifier["fc.weight"] = zeros(7, 64);
            c.Classifier["fc.bias"] = zeros(7);
            var table = new System.Collections.Hashtable { ["state_dict_model"] = c.Backbone, ["state_dict_classifier"] = c.Classifier };
            using var f = File.Create(bad);
            PyTorchPickler.PickleStateDict(f, table);
        }
        e = Assert.Throws<ConfigException>(() => PyTorchCheckpoint.Import(bad, ckpt, "resnet8", "linear", splits, set.Config()));
        Assert.Contains("'fc.weight' has shape [7, 64], our model expects [10, 64]", e.Message);

        var notTorch = Path.Combine(dir.Path, "notes.pth");
        File.WriteAllText(notTorch, "hello");
        e = Assert.Throws<ConfigException>(() => PyTorchCheckpoint.Import(notTorch, ckpt, "resnet8", "linear", splits, set.Config()));
        Assert.Contains("not a zip-format PyTorch checkpoint", e.Message);
    }

    public void Dispose()
    {
        set.Dispose();
        dir.Dispose();
    }
}
