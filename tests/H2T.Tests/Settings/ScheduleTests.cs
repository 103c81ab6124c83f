using H2T.Runs;
using H2T.Settings;

using H2T.Training;

namespace H2T.Tests.Settings;

public sealed class ScheduleTests
{
    [Fact]
    public void CosinePerEpochAsTheReference()
    {
        var s = new ScheduleConfig(ScheduleKind.Cosine);
        Assert.Equal(0.02, s.LrAt(0.02, 0, 10), 12);
        Assert.Equal(0.01, s.LrAt(0.02, 5, 10), 12);
        Assert.Equal(0.02 * 0.5 * (1 + Math.Cos(Math.PI * 9 / 10)), s.LrAt(0.02, 9, 10), 12);
    }

    [Fact]
    public void MultiStepWithLinearWarmup()
    {
        var s = new ScheduleConfig(ScheduleKind.MultiStep, WarmupEpochs: 5, Milestones: [160, 180]);
        Assert.Equal(0.02, s.LrAt(0.1, 0, 200), 12);
        Assert.Equal(0.1, s.LrAt(0.1, 4, 200), 12);
        Assert.Equal(0.1, s.LrAt(0.1, 159, 200), 12);
        Assert.Equal(0.01, s.LrAt(0.1, 160, 200), 12);
        Assert.Equal(0.001, s.LrAt(0.1, 199, 200), 12);
    }

    [Fact]
    public void SeedsDifferPerStreamAndEpochAndAreStable()
    {
        Assert.NotEqual(Seeds.Derive(0, 0, Seeds.Sampler), Seeds.Derive(0, 0, Seeds.Augment));
        Assert.NotEqual(Seeds.Derive(0, 0, Seeds.Sampler), Seeds.Derive(0, 1, Seeds.Sampler));
        Assert.Equal(Seeds.Derive(5, 3, 2), Seeds.Derive(5, 3, 2));
        Assert.True(Seeds.Derive(int.MaxValue, 999, 8) >= 0);
    }
}
