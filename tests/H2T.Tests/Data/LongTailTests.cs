using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using H2T.Data;
using H2T.Settings;

namespace H2T.Tests.Data;

public sealed class LongTailTests
{
    static JsonElement Fixture()
    {
        var path = Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Data", "Fixtures", "numpy_shuffle.json");
        return JsonDocument.Parse(File.ReadAllText(path)).RootElement;
    }

    static string Digest(IEnumerable<int> xs) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(string.Join(",", xs))));

    [Fact]
    public void ExpCountsMatchTheReferenceTotals()
    {
        Assert.Equal(12406, LongTail.Counts(5000, 10, 100, ImbalanceType.Exp).Sum());
        Assert.Equal(10847, LongTail.Counts(500, 100, 100, ImbalanceType.Exp).Sum());
        var fm = LongTail.Counts(6000, 10, 100, ImbalanceType.Exp);
        Assert.Equal([6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60], fm);
        Assert.Equal(14886, fm.Sum());
    }

    [Fact]
    public void ExpCountsMatchNumpyForEveryClass()
    {
        foreach (var e in Fixture().GetProperty("exp_totals").EnumerateArray())
        {
            var expected = e.GetProperty("counts").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.Equal(expected, LongTail.Counts(e.GetProperty("n_max").GetInt32(),
                e.GetProperty("classes").GetInt32(), 100, ImbalanceType.Exp));
        }
    }

    [Fact]
    public void StepKeepsNMaxForTheFirstHalfAndNMaxOverIfAfter()
    {
        Assert.Equal([5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50], LongTail.Counts(5000, 10, 100,
            ImbalanceType.Step));
        Assert.Equal([500, 500, 5, 5, 5], LongTail.Counts(500, 5, 100, ImbalanceType.Step));
        Assert.All(LongTail.Counts(500, 7, 1, ImbalanceType.Exp), c => Assert.Equal(500, c));
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void ImbalanceFactorBelowOneIsRejected(double f) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => LongTail.Counts(100, 10, f, ImbalanceType.Exp));

    [Fact]
    public void Mt19937ShuffleIsIdenticalToNumpyLegacyShuffle()
    {
        int checkedCount = 0;
        foreach (var s in Fixture().GetProperty("shuffles").EnumerateArray())
        {
            var seed = s.GetProperty("seed").GetUInt32();
            var n = s.GetProperty("n").GetInt32();
            var expected = s.GetProperty("result").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var a = Enumerable.Range(0, n).ToArray();
            new NumpyRandom(seed).Shuffle<int>(a);
            Assert.Equal(expected, a);
            checkedCount++;
        }
        Assert.Equal(30, checkedCount);
    }

    [Fact]
    public void SelectionIsIdenticalToNumpyOnSyntheticLabels()
    {
        var lt = Fixture().GetProperty("long_tail").EnumerateArray().First(e =>
            e.GetProperty("name").GetString() == "synthetic");
        var labels = Enumerable.Range(0, 500).Select(i => i * 7 % 5).ToArray();
        var counts = lt.GetProperty("counts").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var sel = LongTail.SelectIndices(labels, counts, 0);
        Assert.Equal(lt.GetProperty("selected").EnumerateArray().Select(x => x.GetInt32()), sel);
        Assert.Equal(lt.GetProperty("sha256").GetString(), Digest(sel));
    }

    [Fact]
    public void FashionMnistLongTailIsImageForImageTheNumpySelection()
    {
        var labels = Idx.ReadLabels("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").Select(b =>
            (int)b).ToArray();
        var cases = Fixture().GetProperty("long_tail").EnumerateArray().Where(e =>
            e.GetProperty("name").GetString() == "fashion-mnist-train").ToList();
        Assert.Equal(2, cases.Count);
        foreach (var lt in cases)
        {
            var counts = lt.GetProperty("counts").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var sel = LongTail.SelectIndices(labels, counts, lt.GetProperty("seed").GetInt32());
            Assert.Equal(14886, sel.Length);
            Assert.Equal(lt.GetProperty("first").EnumerateArray().Select(x => x.GetInt32()), sel[..50]);
            Assert.Equal(lt.GetProperty("last").EnumerateArray().Select(x => x.GetInt32()), sel[^50..]);
            Assert.Equal(lt.GetProperty("sha256").GetString(), Digest(sel));
        }
    }

    [Fact]
    public void SelectionKeepsEveryImageOfAShortClassAndRejectsBadLabels()
    {
        int[] labels = [0, 0, 0, 1];
        var sel = LongTail.SelectIndices(labels, [2, 5], 3);
        Assert.Equal(3, sel.Length);
        Assert.Equal(3, sel[^1]);
        var e = Assert.Throws<ArgumentException>(() => LongTail.SelectIndices([0, 2], [1, 1], 0));
        Assert.Contains("label 2 at index 1", e.Message);
    }

    [Fact]
    public void GroupsByCountsRangesAndTheTenClassDefault()
    {
        var g = ClassGroups.FromCounts([500, 101, 100, 20, 19, 1]);
        Assert.Equal([0, 1], g.Head);
        Assert.Equal([2, 3], g.Medium);
        Assert.Equal([4, 5], g.Tail);
        Assert.Equal("medium", g.GroupOf(3));
        var d = ClassGroups.Default(LongTail.Counts(5000, 10, 100, ImbalanceType.Exp));
        Assert.Equal([0, 1, 2], d.Head);
        Assert.Equal([3, 4, 5, 6], d.Medium);
        Assert.Equal([7, 8, 9], d.Tail);
        var r = ClassGroups.FromRanges(100, 36, 71);
        Assert.Equal((36, 35, 29), (r.Head.Length, r.Medium.Length, r.Tail.Length));
        Assert.Equal("tail", r.GroupOf(71));
        Assert.Throws<ArgumentException>(() => ClassGroups.FromRanges(10, 7, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => r.GroupOf(100));
        // 100-class default uses counts.
        var c100 = ClassGroups.Default(LongTail.Counts(500, 100, 100, ImbalanceType.Exp));
        Assert.Equal(100, c100.NumClasses);
        Assert.True(c100.Tail.Length > 0 && c100.Head.Length > 0);
    }
}
