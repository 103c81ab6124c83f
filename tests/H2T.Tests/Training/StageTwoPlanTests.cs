using H2T.Runs;
using H2T.Settings;
using H2T.Training;

namespace H2T.Tests.Training;

/// <summary>The typed stage-II plan: members share what the feature source and the epoch loop read, and nothing
/// else.</summary>
public sealed class StageTwoPlanTests
{
    static StageTwoMember Member(StageTwoConfig c, string folder) => new([],
        new RunFolder(Path.Combine(Path.GetTempPath(), folder)), c);

    [Fact]
    public void MembersMayDifferInTheirOwnSettingsOnly()
    {
        var shared = new StageTwoConfig { Epochs = 3 };
        var plan = new StageTwoPlan([
            Member(shared with { Rho = 0 }, "a"),
            Member(shared with { Rho = 0.5, Fusion = "feature-mixup", LrFactor = 0.1,
                Optim = shared.Optim with { Lr = 0.3, WeightDecay = 1e-3 } }, "b"),
        ]);
        Assert.Equal(3, plan.Shared.Epochs);
        Assert.Equal(2, plan.Members.Count);
        foreach (var (other, key) in new (StageTwoConfig, string)[]
                 {
                     (shared with { Epochs = 4 }, "num_epochs"),
                         (shared with { Optim = shared.Optim with { BatchSize = 64 } }, "batch_size"),
                     (shared with { ShiftBn = false }, "shift_bn"),
                         (shared with { FeatureCache = FeatureCacheMode.Pooled }, "feature_cache"),
                     (shared with { Seed = 1 }, "seed"), (shared with { Precision = ComputePrecision.Bf16 },
                         "precision"),
                 })
        {
            var e = Assert.Throws<ConfigException>(() => new StageTwoPlan([Member(shared, "a"), Member(other, "b")]));
            Assert.Equal(key, e.Key);
            Assert.Contains($"differs from rho=0.25 in {key}", e.Message);
        }
        Assert.Throws<ArgumentException>(() => new StageTwoPlan([]));
    }

    [Fact]
    public void ASweepIsEveryRhoTimesEveryCombinationOfItsOptions()
    {
        var two = new StageTwoConfig();
        var sweep = new SweepConfig(two, [0, 0.5])
        {
            Options =
            [
                new SweptOption("lr_scheduler.lr_factor", [new("0.1", c => c with { LrFactor = 0.1 }), new("0.2",
                    c => c with { LrFactor = 0.2 })]),
                new SweptOption("weight_decay", [new("1e-4",
                    c => c with { Optim = c.Optim with { WeightDecay = 1e-4 } })]),
            ],
        };
        var points = sweep.Points();
        Assert.Equal(4, points.Count);
        Assert.Equal("rho=0.5, lr_scheduler.lr_factor=0.1, weight_decay=1e-4", points[2].Label);
        Assert.Equal(0.5, points[2].Config.Rho);
        Assert.Equal(0.1, points[2].Config.LrFactor);
        Assert.Equal(1e-4, points[2].Config.Optim.WeightDecay);
        Assert.Equal("rho=0.5+lr_scheduler.lr_factor=0.1+weight_decay=1e-4", SweepConfig.FolderName(points[2]));
        // A plain rho sweep keeps its folder names.
        Assert.Equal("rho0.5", SweepConfig.FolderName(new SweepConfig(two, [0, 0.5]).Points()[1]));
        sweep.ValidateValues();
        var shared = sweep with { Options = [new SweptOption("shift_bn", [new("on", c => c with { ShiftBn = true }),
            new("off", c => c with { ShiftBn = false })])] };
        Assert.Contains("shift_bn cannot be swept", Assert.Throws<ConfigException>(shared.ValidateValues).Message);
        var repeated = sweep with { Options = [new SweptOption("lr", [new("0.1", c => c), new("0.1", c => c)])] };
        Assert.Contains("values repeat", Assert.Throws<ConfigException>(repeated.ValidateValues).Message);
    }
}
