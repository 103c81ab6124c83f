using H2T.Runs;
using H2T.Configuration;
using H2T.Interop;
using H2T.Models;
using H2T.Settings;
using H2T.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;
using H2T.Tests.Cli;
using H2T.Tests.Data;

namespace H2T.Tests.Interop;

/// <summary>
/// torchvision's own models (Debian's python3-torchvision 0.14) as the pretrained start: their state dicts load into
/// our ImageNet ResNets, which then give torchvision's eval logits on real images; stage I fine-tunes from them.
/// </summary>
public sealed class PretrainedBackboneTests(ITestOutputHelper output)
{
    [Fact]
    public void ANamesArchitectureIsKnownWithoutReadingOrDownloading()
    {
        Assert.Equal("resnet18_cntk", PretrainedBackbone.ArchitectureOf("mlnet:resnet18"));
        Assert.Equal("resnet50", PretrainedBackbone.ArchitectureOf("torchvision:resnet50.IMAGENET1K_V2"));
        Assert.Equal("vit_b_16", PretrainedBackbone.ArchitectureOf("torchvision:vit_b_16"));
        Assert.Equal("vit_base_patch16_clip_quickgelu_224",
            PretrainedBackbone.ArchitectureOf("hf-hub:timm/vit_base_patch16_clip_224.openai"));
        Assert.Null(PretrainedBackbone.ArchitectureOf("/weights/mine.pth"));
        Assert.Contains("not one of torchvision's weights", Assert.Throws<H2T.Settings.ConfigException>(() =>
            PretrainedBackbone.ArchitectureOf("torchvision:resnet50.NO_SUCH")).Message);
    }

    [RequiresPyTorchTheory]
    [InlineData("resnet50")]
    [InlineData("resnext50_32x4d")]
    [InlineData("resnet152")]
    [InlineData("resnet18")]
    [InlineData("resnet34")]
    public void TorchvisionWeightsGiveTorchvisionsLogitsOnRealImages(string arch)
    {
        var dir = PyTorchFixtures.TorchvisionFolder();
        var file = Path.Combine(dir, $"{arch}.pth");
        using var backbone = ModelFactory.CreateBackbone(arch, 3);
        var lines = PretrainedBackbone.Load(file, backbone, 10);
        Assert.Contains(lines, l => l.Contains("a plain state dict (torchvision style)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l == $"pretrained backbone: {backbone.state_dict().Count} tensor(s) loaded");
        Assert.Contains(lines, l => l.Contains($"its fc is [1000, {backbone.FeatureChannels}]",
            StringComparison.Ordinal) && l.Contains("afresh for 10 classes", StringComparison.Ordinal));

        using var logits = TorchvisionLogits(backbone, dir, arch, arch, output);
        var io = TorchSaveReader.ReadDict(Path.Combine(dir, $"{arch}_io.pth"));
        using var want = (Tensor)io["logits"]!;
        ((Tensor)io["input"]!).Dispose();
        using var top = logits.argmax(1);
        using var topWant = want.argmax(1);
        Assert.True((top == topWant).all().item<bool>());
    }

    [RequiresPyTorchFact]
    public void Stage1FineTunesFromTorchvisionWeightsTrainingOnlyWhatItIsTold()
    {
        var file = Path.Combine(PyTorchFixtures.TorchvisionFolder(), "resnet50.pth");
        using var data = new TempDir();
        DataTestFiles.ExtractCifarJpgSample(data.Path, perClass: 6);
        using var runs = new TempDir();
        var run = Path.Combine(runs.Path, "ft");
        var (rc, text) = CliRunner.Run("stage1", "--dataset", "cifar10-jpg", "--data", data.Path, "--imb-factor", "2",
            "--backbone", "resnet50",
            "--pretrained", file, "--trainable", "layer4", "--epochs", "1", "--batch-size", "16", "--mixup", "0",
                "--out", run, "--threads", "2");
        Assert.True(rc == 0, text);
        var log = File.ReadAllText(Path.Combine(run, "log.txt"));
        Assert.Contains("pretrained backbone: 318 tensor(s) loaded", log);
        Assert.Contains("the classifier is initialised afresh for 10 classes", log);
        Assert.Contains("trainable: layer4 and the classifier", log);
        Assert.Contains("initialised afresh for 10 classes", text.ReplaceLineEndings(""));

        // Frozen layers (weights and BatchNorm statistics) are torchvision's still; layer4 trained.
        using var weights = PyTorchWeights.Read(file);
        using var models = Checkpoint.Open(Path.Combine(run, "last.ckpt"));
        var trained = models.Backbone.state_dict();
        foreach (var key in new[] { "conv1.weight", "bn1.running_mean", "layer3.5.bn3.running_var",
            "layer1.0.conv2.weight" })
            Assert.True(trained[key].allclose(weights.Backbone[key]), $"{key} changed, but it is frozen");
        Assert.False(trained["layer4.2.conv3.weight"].allclose(weights.Backbone["layer4.2.conv3.weight"]),
            "layer4 did not train");
    }

    [Fact]
    public void PretrainedAndTrainableAreConfigKeysAndFlagsAndAMissingFileOrModuleIsNamed()
    {
        using var dir = new TempDir();
        var weights = dir.Write("w.pth", [0x50, 0x4B, 3, 4]);
        var yaml = dir.Write("c.yaml",
            System.Text.Encoding.UTF8.GetBytes(
            $"dataset: cifar10\nbackbone: resnet50\npretrained: {weights}\ntrainable: [layer4.2]\n"));
        var c = ReferenceConfig.Bind(StageMode.StageOne, ConfigReader.ReadFile(yaml)).StageOne;
        Assert.Equal(weights, c.Pretrained);
        Assert.Equal(["layer4.2"], c.Trainable!);
        var typed = H2T.Tests.Cli.CliFlags.Entries(StageMode.StageOne, ["--trainable", "layer3,layer4"]);
        var viaFlags = ReferenceConfig.Bind(StageMode.StageOne, [.. ConfigReader.ReadFile(yaml), .. typed]).StageOne;
        Assert.Equal(["layer3", "layer4"], viaFlags.Trainable!);
        using var backbone = ModelFactory.CreateBackbone("resnet8", 1);
        Assert.Contains("pretrained: /nowhere.pth: file not found",
            Assert.Throws<ConfigException>(() => PretrainedBackbone.Load("/nowhere.pth", backbone, 10)).Message);
        Assert.Contains("'layer9' is not a module of resnet8",
            Assert.Throws<ArgumentException>(() => backbone.FreezeAllBut(["layer9"])).Message);
    }

    /// <summary>The backbone with torchvision's fc of <paramref name="arch"/> on top, in eval mode, on the fixture's
    /// real images; asserts its logits equal torchvision's to 1e-4 of the largest, and returns them.</summary>
    internal static Tensor TorchvisionLogits(Backbone backbone, string dir, string arch, string what,
        ITestOutputHelper output)
    {
        var file = Path.Combine(dir, arch + ".pth");
        using var weights = PyTorchWeights.Read(file);
        using var head = new LinearHead(backbone.FeatureChannels, 1000);
        StateDictLoader.Load(file, "classifier", weights.Classifier, head);
        var io = TorchSaveReader.ReadDict(Path.Combine(dir, $"{arch}_io.pth"));
        using var input = (Tensor)io["input"]!;
        using var want = (Tensor)io["logits"]!;
        backbone.eval();
        head.eval();
        using var _ = no_grad();
        using var fmap = backbone.call(input);
        var logits = head.call(fmap);
        float scale = want.abs().max().item<float>(), diff = (logits - want).abs().max().item<float>();
        output.WriteLine(
            $"{what}: max |ours - torchvision| = {diff:E2} on logits up to {scale:F3} (relative {diff / scale:E2})");
        Assert.True(diff <= 1e-4 * scale, $"{what}: max |diff| {diff} (logits up to {scale})");
        return logits;
    }
}
