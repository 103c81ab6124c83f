using H2T.Models;
using H2T.Settings;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

/// <summary>The tuning kinds on a CNN: what trains, SSF's hooks, and SSF folded into a plain backbone.</summary>
public sealed class TuningTests
{
    static Backbone Net(string arch = "resnet8", int channels = 3)
    {
        manual_seed(1);
        var b = ModelFactory.CreateBackbone(arch, channels, new(ComputePrecision.Fp32, FeatureLayout.Nchw));
        return b;
    }

    static long Count(Backbone b, Func<string, nn.Module?, bool> pick)
    {
        var owners = b.named_modules().ToDictionary(m => m.name, m => m.module);
        long n = 0;
        foreach (var (name, p) in b.named_parameters())
        {
            int dot = name.LastIndexOf('.');
            owners.TryGetValue(dot < 0 ? "" : name[..dot], out var owner);
            if (pick(name, owner)) n += p.numel();
        }
        return n;
    }

    [Fact]
    public void EachKindTrainsExactlyItsParameters()
    {
        using var plain = Net();
        long total = Count(plain, (_, _) => true);
        long biases = Count(plain, (n, _) => n.EndsWith(".bias", StringComparison.Ordinal));
        long norms = Count(plain, (_, m) => m is BatchNorm);
        long bnWidths = plain.named_modules().Where(m => m.module is BatchNorm)
            .Sum(m => ((BatchNorm)m.module).weight!.shape[0]);
        Assert.True(biases > 0 && norms > biases, $"{biases} {norms}");

        foreach (var (kind, expected, expectedTotal) in new[]
        {
            (TuningKind.Full, total, total), (TuningKind.Frozen, 0L, total), (TuningKind.Bias, biases, total),
            (TuningKind.Norm, norms, total), (TuningKind.Ssf, 2 * bnWidths, total + 2 * bnWidths),
        })
        {
            using var b = Net();
            var s = Tuning.Apply(b, kind, 0, 10);
            Assert.Equal(expected, s.TrainableParameters);
            Assert.Equal(expectedTotal, s.TotalParameters);
            Assert.Contains(TuningNames.Name(kind), s.Describe());
        }
    }

    [Theory]
    [InlineData(TuningKind.Frozen, false)]
    [InlineData(TuningKind.Bias, false)]
    [InlineData(TuningKind.Ssf, false)]
    [InlineData(TuningKind.Norm, true)]
    [InlineData(TuningKind.Full, true)]
    public void BatchNormReestimatesItsStatisticsOnlyWhenItsScaleTrains(TuningKind kind, bool training)
    {
        using var b = Net();
        Tuning.Apply(b, kind, 0, 10);
        b.TrainKeepingFrozenInEval();
        Assert.All(b.named_modules().Where(m => m.module is BatchNorm), m => Assert.Equal(training,
            m.module.training));
    }

    [Theory]
    [InlineData("resnet8")]
    [InlineData("resnet18")]
    public void SsfChangesTheOutputAndFoldsIntoAPlainBackboneExactly(string arch)
    {
        using var input = randn(2, 3, 32, 32, generator: new TorchSharp.torch.Generator(5));
        using var plain = Net(arch);
        plain.eval();
        var tuned = Net(arch);
        Tuning.Apply(tuned, TuningKind.Ssf, 0, 10);
        tuned.eval();
        using (no_grad())
        {
            using var before = tuned.call(input);
            using var reference = plain.call(input);
            Assert.True(before.allclose(reference, 1e-5, 1e-6), "SSF at its start (scale 1, shift 0) is the identity");
            var g = new TorchSharp.torch.Generator(7);
            foreach (var (name, p) in tuned.named_parameters().Where(p => Tuning.IsTuningModule(p.name)))
                p.copy_(name.EndsWith("scale", StringComparison.Ordinal) ? 1 + 0.2 * randn(p.shape, generator: g)
                    : 0.1 * randn(p.shape, generator: g));
        }
        using var hooked = no_grad_call(tuned, input);
        using var plainOut = no_grad_call(plain, input);
        Assert.False(hooked.allclose(plainOut, 1e-3, 1e-3), "the scales and shifts change the output");
        var merged = Tuning.Merged(tuned, () => Net(arch));
        try
        {
            Assert.NotSame(tuned, merged);
            Assert.Null(merged.TuningState);
            Assert.DoesNotContain(merged.named_parameters(), p => Tuning.IsTuningModule(p.name));
            merged.eval();
            using var folded = no_grad_call(merged, input);
            double rel = (folded - hooked).abs().max().item<float>() / hooked.abs().max().item<float>();
            Assert.True(rel < 1e-5, $"merged vs hooked: max relative difference {rel:E2}");
            // The BatchNorm-folded fast path sees the merged weights too.
            using var fast = merged.FoldedForInference();
            if (fast is not null)
            {
                fast.eval();
                using var f = no_grad_call(fast, input);
                Assert.True(f.allclose(hooked, 1e-4, 1e-4));
            }
        }
        finally { merged.Dispose(); }
    }

    static Tensor no_grad_call(Backbone b, Tensor x)
    {
        using var _ = no_grad();
        return b.call(x);
    }

    [Fact]
    public void TokenKindsOnACnnNameTheBackboneAndTheChoices()
    {
        using var b = Net();
        var e = Assert.Throws<ConfigException>(() => Tuning.Apply(b, TuningKind.AdaptFormer, 0, 10));
        Assert.Contains("resnet8", e.Message);
        Assert.Contains("needs a ViT backbone", e.Message);
    }

    [Theory]
    [InlineData(TuningKind.AdaptFormer, 1000, 12, 32)]
    [InlineData(TuningKind.Lora, 10, 12, 1)]
    [InlineData(TuningKind.AdaptFormer, 365, 12, 8)]
    [InlineData(TuningKind.VptDeep, 10, 12, 10)]
    [InlineData(TuningKind.Ssf, 10, 12, 0)]
    public void DefaultSizesFollowLift(TuningKind kind, int classes, int blocks, int expected) =>
        Assert.Equal(expected, Tuning.DefaultDim(kind, classes, blocks));
}
