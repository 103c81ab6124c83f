namespace H2T.Bench;

/// <summary>The one summary statistic every benchmark here reports: timings on a shared machine have
/// outliers.</summary>
internal static class BenchStats
{
    public static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        if (v.Length == 0) throw new ArgumentException("no values to summarise", nameof(values));
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
