using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

/// <summary>Our ViT's names, its map output, other input sizes, bf16 and a few training steps (vit_micro).</summary>
public sealed class VisionTransformerTests
{
    [Fact]
    public void NamesAreTorchvisionsAndTheOptionsAddTheirOwn()
    {
        using var vit = ModelFactory.CreateBackbone("vit_micro", 3);
        var keys = vit.state_dict().Keys.ToHashSet();
        foreach (var k in new[] { "conv_proj.weight", "conv_proj.bias", "class_token", "encoder.pos_embedding",
            "encoder.layers.encoder_layer_1.ln_1.weight",
            "encoder.layers.encoder_layer_1.self_attention.in_proj_weight",
            "encoder.layers.encoder_layer_1.self_attention.in_proj_bias",
            "encoder.layers.encoder_layer_1.self_attention.out_proj.weight", "encoder.layers.encoder_layer_0.ln_2.bias",
            "encoder.layers.encoder_layer_0.mlp.0.weight", "encoder.layers.encoder_layer_0.mlp.3.bias",
            "encoder.ln.weight" })
            Assert.Contains(k, keys);
        // 4 + 2 layers x 12 + 2: nothing else (no heads, no duplicate registrations).
        Assert.Equal(4 + 2 * 12 + 2, keys.Count);
        using var dino = new VisionTransformer("d", VisionTransformer.Configs["vit_micro"] with
        {
            PreNorm = true, LayerScale = 1e-5, RegisterTokens = 2, NoEmbedClass = true, PatchBias = false,
        });
        var extra = dino.state_dict().Keys.Except(keys).Order().ToArray();
        Assert.Equal(["encoder.layers.encoder_layer_0.ls_1.gamma", "encoder.layers.encoder_layer_0.ls_2.gamma",
            "encoder.layers.encoder_layer_1.ls_1.gamma", "encoder.layers.encoder_layer_1.ls_2.gamma",
            "encoder.ln_pre.bias", "encoder.ln_pre.weight", "reg_token"], extra);
        Assert.Equal([1, 64, 48], dino.state_dict()["encoder.pos_embedding"].shape);
    }

    [Fact]
    public void ForwardIsTheClassTokenAsAOneByOneMapAtAnyGridAndBf16IsClose()
    {
        using var vit = ModelFactory.CreateBackbone("vit_micro", 3);
        vit.eval();
        using var _ = no_grad();
        using var x = randn(2, 3, 32, 32);
        using var map = vit.call(x);
        Assert.Equal([2, 48, 1, 1], map.shape);
        using var tokens = ((VisionTransformer)vit).Tokens(x);
        Assert.Equal([2, 65, 48], tokens.shape);
        Assert.True(tokens.select(1, 0).allclose(map.flatten(1)));
        using var bigger = randn(2, 3, 48, 48); // a 12x12 grid: the 8x8 positions resampled on the fly
        using var big = vit.call(bigger);
        Assert.Equal([2, 48, 1, 1], big.shape);
        using var bf = ModelFactory.CreateBackbone("vit_micro", 3, new BackboneCompute(ComputePrecision.Bf16));
        bf.load_state_dict(vit.state_dict());
        bf.eval();
        using var low = bf.call(x);
        Assert.Equal(ScalarType.Float32, low.dtype);
        // bf16's 8-bit mantissa through attention and the final LayerNorm: close in direction, not to 1e-5.
        using var cos = nn.functional.cosine_similarity(low.flatten(1), map.flatten(1), 1);
        Assert.True(cos.min().item<float>() > 0.99, $"bf16 features' cosine to fp32: {cos.min().item<float>()}");
    }

    [Fact]
    public void AFewTrainingStepsLowerTheLossWithALinearHead()
    {
        manual_seed(3);
        using var vit = ModelFactory.CreateBackbone("vit_micro", 3);
        using var head = ModelFactory.CreateHead("linear", vit, 4);
        var parameters = vit.parameters().Concat(head.parameters()).ToList();
        using var opt = optim.AdamW(parameters, 1e-3);
        using var x = randn(8, 3, 32, 32);
        using var y = tensor(new long[] { 0, 1, 2, 3, 0, 1, 2, 3 });
        float first = 0, last = 0;
        for (int step = 0; step < 15; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = nn.functional.cross_entropy(head.call(vit.call(x)), y);
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first, $"loss {first} -> {last}");
    }
}
