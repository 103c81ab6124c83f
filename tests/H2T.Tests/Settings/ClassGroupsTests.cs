using H2T.Settings;

namespace H2T.Tests.Settings;

/// <summary>Default groups: the reference's split for the built 10-class sets, the count rule, and the rank rule
/// that keeps an own folder's groups from being empty.</summary>
public sealed class ClassGroupsTests
{
    [Fact]
    public void BuiltTenClassSetsKeepTheReferenceSplit()
    {
        var g = ClassGroups.Default([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]);
        Assert.Equal([0, 1, 2], g.Head);
        Assert.Equal([3, 4, 5, 6], g.Medium);
        Assert.Equal([7, 8, 9], g.Tail);
    }

    [Fact]
    public void AnOwnFolderWithEveryClassAboveAHundredIsSplitByRank()
    {
        // The emoji set's training counts (bench/data/emoji-lt.sh), classes in folder-name order.
        int[] counts = [255, 475, 809, 390, 789, 6670, 503, 654, 654];
        Assert.Empty(ClassGroups.FromCounts(counts).Tail);
        var g = ClassGroups.Default(counts);
        Assert.Equal([2, 4, 5], g.Head);
        Assert.Equal([6, 7, 8], g.Medium);
        Assert.Equal([0, 1, 3], g.Tail);
    }

    [Fact]
    public void TheCountRuleStandsWhenItFillsEveryGroup()
    {
        int[] counts = [300, 150, 60, 30, 10, 5, 200];
        var g = ClassGroups.Default(counts);
        Assert.Equal([0, 1, 6], g.Head);
        Assert.Equal([2, 3], g.Medium);
        Assert.Equal([4, 5], g.Tail);
    }

    [Fact]
    public void TenOwnClassesInNameOrderAreGroupedByTheirCounts()
    {
        int[] counts = [40, 500, 45, 600, 700, 50, 300, 200, 42, 400];
        var g = ClassGroups.Default(counts);
        Assert.Equal([1, 3, 4], g.Head);
        Assert.Equal([0, 2, 8], g.Tail);
        Assert.Equal(4, g.Medium.Length);
    }
}
