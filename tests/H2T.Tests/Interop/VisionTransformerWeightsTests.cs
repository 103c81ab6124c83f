using H2T.Interop;
using H2T.Models;
using H2T.Settings;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace H2T.Tests.Interop;

/// <summary>
/// ViT weights from their real producers onto our <see cref="VisionTransformer"/>: torchvision 0.14's state dicts
/// (written at test time), timm's safetensors and an OpenCLIP checkpoint (committed, written by
/// Fixtures/make_vit_layout_fixtures.py from timm's and OpenCLIP's own code); the class-token features must equal the
/// producers' on real CIFAR images to 1e-5 of the largest.
/// </summary>
public sealed class VisionTransformerWeightsTests(ITestOutputHelper output)
{
    static readonly VisionTransformerConfig TimmClip = new(8, 32, 48, 2, 4, 96, PreNorm: true,
        Activation: VitActivation.QuickGelu, Eps: 1e-5, PatchBias: false);
    static readonly VisionTransformerConfig TimmDino = new(14, 56, 48, 2, 4, 96, LayerScale: 1e-5, RegisterTokens: 4,
        NoEmbedClass: true);

    [RequiresPyTorchTheory]
    [InlineData("vit_b_16")]
    [InlineData("vit_b_32")]
    public void TorchvisionStateDictsGiveTorchvisionsClassToken(string arch)
    {
        var dir = PyTorchFixtures.TorchvisionVitFolder();
        using var vit = ModelFactory.CreateBackbone(arch, 3);
        var lines = PretrainedBackbone.Load(Path.Combine(dir, arch + ".pth"), vit, 10);
        Assert.Contains(lines, l => l == $"pretrained backbone: {vit.state_dict().Count} tensor(s) loaded");
        Assert.Contains(lines, l => l.Contains("'heads.head.bias', 'heads.head.weight'", StringComparison.Ordinal));
        var io = TorchSaveReader.ReadDict(Path.Combine(dir, arch + "_io.pth"));
        Compare(vit, (Tensor)io["input"]!, (Tensor)io["features"]!, arch);
    }

    [RequiresPyTorchFact]
    public void AnotherImageSizeResamplesPositionsAsTorchvisionsInterpolateEmbeddings()
    {
        var dir = PyTorchFixtures.TorchvisionVitFolder();
        using var vit = new VisionTransformer("vit_b_16",
            VisionTransformer.Configs["vit_b_16"] with { ImageSize = 160 });
        var lines = PretrainedBackbone.Load(Path.Combine(dir, "vit_b_16.pth"), vit, 10);
        Assert.Contains(lines, l => l.Contains("resampled from a 14x14 to a 10x10 patch grid",
            StringComparison.Ordinal));
        var io = TorchSaveReader.ReadDict(Path.Combine(dir, "vit_b_16_io.pth"));
        Compare(vit, (Tensor)io["input_160"]!, (Tensor)io["features_160"]!, "vit_b_16 at 160 px");
    }

    [Theory]
    [InlineData("timm_clip_quickgelu.safetensors", "timm_clip_quickgelu")]
    [InlineData("timm_dinov2_reg.safetensors", "timm_dinov2_reg")]
    [InlineData("open_clip_vit.pt", "open_clip_vit")]
    public void TimmAndOpenClipLayoutsGiveTheirOwnFeatures(string file, string name)
    {
        var config = name == "timm_dinov2_reg" ? TimmDino : TimmClip;
        using var vit = new VisionTransformer(name, config);
        var source = PretrainedBackbone.Resolve(PyTorchFixtures.Committed(file));
        var lines = PretrainedBackbone.Load(source, vit, 10);
        Assert.Contains(lines, l => l == $"pretrained backbone: {vit.state_dict().Count} tensor(s) loaded");
        if (name == "open_clip_vit")
            Assert.Contains(lines, l => l.Contains("'visual.proj'", StringComparison.Ordinal) &&
                l.Contains("text tower", StringComparison.Ordinal));
        if (name == "timm_clip_quickgelu")
            Assert.Contains(lines, l => l.Contains("'head.bias', 'head.weight'", StringComparison.Ordinal));
        var norm = PretrainedBackbone.InputNormalization(source, vit)!;
        Assert.Equal(name == "timm_dinov2_reg" ? H2T.Data.Normalization.ImageNet.Mean :
            VisionTransformerWeights.Clip.Mean, norm.Mean);
        var io = TorchSaveReader.ReadDict(PyTorchFixtures.Committed("vit_layout_io.pt"));
        Compare(vit, (Tensor)io[name + ".input"]!, (Tensor)io[name + ".features"]!, name);
        foreach (var t in io.Values.OfType<Tensor>()) t.Dispose();
    }

    [Fact]
    public void AMissingKeyOrAWrongShapeIsNamedInTheFilesSpelling()
    {
        var path = PyTorchFixtures.Committed("timm_clip_quickgelu.safetensors");
        var (tensors, _) = SafeTensors.Read(path);
        using var vit = new VisionTransformer("t", TimmClip);
        var missing = new Dictionary<string, Tensor>(tensors);
        missing.Remove("blocks.1.norm2.weight");
        var e = Assert.Throws<ConfigException>(() => VisionTransformerWeights.Load(path, path, missing, vit, 10));
        Assert.Contains("missing 'blocks.1.norm2.weight'", e.Message);
        Assert.Contains("encoder.layers.encoder_layer_1.ln_2.weight", e.Message);

        var wrong = new Dictionary<string, Tensor>(tensors) { ["blocks.0.attn.qkv.weight"] = zeros(144, 47) };
        e = Assert.Throws<ConfigException>(() => VisionTransformerWeights.Load(path, path, wrong, vit, 10));
        Assert.Contains("'blocks.0.attn.qkv.weight' is [144, 47]", e.Message);
        Assert.Contains("[144, 48]", e.Message);

        var extra = new Dictionary<string, Tensor>(tensors) { ["blocks.0.attn.q_norm.weight"] = zeros(12) };
        e = Assert.Throws<ConfigException>(() => VisionTransformerWeights.Load(path, path, extra, vit, 10));
        Assert.Contains("'blocks.0.attn.q_norm.weight' is not a tensor", e.Message);

        // Another architecture: the error says what the file is and what the backbone is.
        using var micro = ModelFactory.CreateBackbone("vit_micro", 3);
        e = Assert.Throws<ConfigException>(() => PretrainedBackbone.Load(path, micro, 10));
        Assert.Contains("patch 8, width 48, depth 2, MLP 96, ln_pre, no patch bias", e.Message);
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void NamesSayTheArchitectureAndTorchvisionsVariantsAreListed()
    {
        Assert.Equal(("vit_b_16", "IMAGENET1K_SWAG_E2E_V1", "vit_b_16_swag-9ac1b537.pth"),
            WeightDownloads.TorchvisionEntry("torchvision:vit_b_16.IMAGENET1K_SWAG_E2E_V1"));
        Assert.Equal("vit_b_16-c867db91.pth", WeightDownloads.TorchvisionEntry("torchvision:vit_b_16").File);
        Assert.Equal("vit_l_16_lc_swag-4d563306.pth",
            WeightDownloads.TorchvisionEntry("torchvision:vit_l_16.IMAGENET1K_SWAG_LINEAR_V1").File);
        Assert.Equal("vit_b_32-d86f8d99.pth", WeightDownloads.TorchvisionEntry("torchvision:vit_b_32").File);
        var tiny = VisionTransformerWeights.ArchitectureFor(VisionTransformer.Configs["vit_small_patch14_dinov2"]);
        Assert.Equal("vit_small_patch14_dinov2", tiny);
        Assert.Equal("vit_base_patch16_clip_quickgelu_224", VisionTransformerWeights.ArchitectureFor(
            VisionTransformer.Configs["vit_base_patch16_clip_224"] with { Activation = VitActivation.QuickGelu }));
    }

    void Compare(Backbone vit, Tensor input, Tensor want, string what)
    {
        vit.eval();
        using var _ = no_grad();
        using var map = vit.call(input);
        Assert.Equal([want.shape[0], want.shape[1], 1, 1], map.shape);
        using var got = map.flatten(1);
        float scale = want.abs().max().item<float>(), diff = (got - want).abs().max().item<float>();
        output.WriteLine($"{what}: max |ours - producer| = {diff:E2} on features up to {scale:F3} " +
            $"(relative {diff / scale:E2})");
        Assert.True(diff <= 1e-5 * scale, $"{what}: max |diff| {diff} (features up to {scale})");
        input.Dispose();
        want.Dispose();
    }

    [Fact]
    public void ResolvingASafeTensorsViTReadsOnlyItsHeaderNames()
    {
        var path = PyTorchFixtures.Committed("timm_clip_quickgelu.safetensors");
        var (tensors, _) = SafeTensors.Read(path);
        try
        {
            Assert.Equal(tensors.Keys.Order(StringComparer.Ordinal), SafeTensors.TensorNames(path)
                .Order(StringComparer.Ordinal));
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        Assert.Equal(VisionTransformerWeights.Clip, PretrainedBackbone.Resolve(path).Norm);
    }
}
