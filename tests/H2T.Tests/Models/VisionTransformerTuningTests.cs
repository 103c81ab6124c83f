using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

/// <summary>LIFT's ViT tunings on vit_micro: what trains, that AdaptFormer and LoRA start as the pretrained network,
/// VPT's prompts change it, and LoRA folds into a plain ViT exactly.</summary>
public sealed class VisionTransformerTuningTests
{
    static Backbone Vit()
    {
        manual_seed(3);
        return ModelFactory.CreateBackbone("vit_micro", 3, new(ComputePrecision.Fp32, FeatureLayout.Nchw));
    }

    static Tensor Input() => randn(2, 3, 32, 32, generator: new TorchSharp.torch.Generator(11));

    static Tensor Run(Backbone b, Tensor x)
    {
        b.eval();
        using var _ = no_grad();
        return b.call(x);
    }

    [Theory]
    // vit_micro: width 48, 2 blocks, patch 4. AdaptFormer dim 4: LN 2x48, down 48x4+4, up 4x48+48, scale 1.
    [InlineData(TuningKind.AdaptFormer, 4, 2 * (96 + 196 + 240 + 1), true)]
    // LoRA rank 2: A 48x2 and B 2x48 for q and v.
    [InlineData(TuningKind.Lora, 2, 2 * 4 * 96, true)]
    [InlineData(TuningKind.VptShallow, 5, 5 * 48, false)]
    [InlineData(TuningKind.VptDeep, 5, 2 * 5 * 48, false)]
    public void TokenKindsTrainOnlyTheirModules(TuningKind kind, int size, long expected, bool startsAsPretrained)
    {
        using var x = Input();
        using var plain = Vit();
        using var reference = Run(plain, x);
        using var b = Vit();
        var s = Tuning.Apply(b, kind, size, 10);
        Assert.Equal(expected, s.TrainableParameters);
        Assert.All(b.named_parameters().Where(p => p.parameter.requires_grad), p =>
            Assert.True(Tuning.IsTuningModule(p.name), p.name));
        using var tuned = Run(b, x);
        Assert.Equal(startsAsPretrained, tuned.allclose(reference, 1e-5, 1e-6));
    }

    [Fact]
    public void BiasAndLayerNormKindsFindTheViTsOwnNamesAndLiftsWidthRuleApplies()
    {
        using var b = Vit();
        var s = Tuning.Apply(b, TuningKind.Norm, 0, 10);
        // ln_1, ln_2 per block and the final ln: 5 norms of 2 x 48.
        Assert.Equal(5 * 96, s.TrainableParameters);
        using var c = Vit();
        var bias = Tuning.Apply(c, TuningKind.Bias, 0, 10);
        Assert.Contains(c.named_parameters(), p => p.name.EndsWith("in_proj_bias", StringComparison.Ordinal) &&
            p.parameter.requires_grad);
        Assert.True(bias.TrainableParameters > 0);
        using var d = Vit();
        Assert.Equal(2, Tuning.Apply(d, TuningKind.AdaptFormer, 0, 10).Dim); // 2^floor(log2(10 / 4))
        using var e = Vit();
        Assert.Throws<ConfigException>(() => Tuning.Apply(e, TuningKind.Ssf, 0, 10));
    }

    [Fact]
    public void LoraFoldsIntoAPlainViTAndAdaptFormerStaysForInference()
    {
        using var x = Input();
        var b = Vit();
        Tuning.Apply(b, TuningKind.Lora, 2, 10);
        using (no_grad())
            foreach (var (_, p) in b.named_parameters().Where(p => Tuning.IsTuningModule(p.name)))
                p.copy_(0.3 * randn(p.shape, generator: new TorchSharp.torch.Generator((ulong)p.numel())));
        using var hooked = Run(b, x);
        using var plain = Vit();
        using var reference = Run(plain, x);
        Assert.False(hooked.allclose(reference, 1e-3, 1e-3), "the LoRA updates change the features");
        var merged = Tuning.Merged(b, Vit);
        try
        {
            Assert.Null(merged.TuningState);
            Assert.DoesNotContain(merged.named_parameters(), p => Tuning.IsTuningModule(p.name));
            using var folded = Run(merged, x);
            double rel = (folded - hooked).abs().max().item<float>() / hooked.abs().max().item<float>();
            Assert.True(rel < 1e-5, $"merged vs unmerged LoRA: {rel:E2}");
        }
        finally { merged.Dispose(); }

        var a = Vit();
        Tuning.Apply(a, TuningKind.AdaptFormer, 4, 10);
        var kept = Tuning.Merged(a, Vit);
        Assert.Same(a, kept);
        Assert.Equal(TuningKind.AdaptFormer, kept.TuningState!.Kind);
        kept.Dispose();
    }
}
