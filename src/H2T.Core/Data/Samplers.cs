using H2T.Settings;

namespace H2T.Data;

/// <summary>Indices into a source for one epoch; deterministic in (seed, epoch).</summary>
public interface ISampler
{
    int Length { get; }
    int[] Indices(int epoch);
}

/// <summary>Small deterministic generator (SplitMix64) keyed by (seed, epoch, ...): independent of thread
/// scheduling and of the .NET version, unlike <see cref="Random"/> without a seed.</summary>
public struct DetRandom
{
    ulong state;

    public DetRandom(params ReadOnlySpan<long> key)
    {
        state = 0x6a09e667f3bcc909UL;
        foreach (var k in key) { state ^= unchecked((ulong)k); state = Mix(state + 0x9e3779b97f4a7c15UL); }
    }

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64() { state += 0x9e3779b97f4a7c15UL; return Mix(state); }

    /// <summary>Uniform in [0, n) without modulo bias (Lemire's multiply-and-reject).</summary>
    public int Next(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "expected n >= 1");
        ulong range = (ulong)n;
        while (true)
        {
            ulong x = NextUInt64() >> 32;
            ulong m = x * range;
            if ((uint)m >= (uint)((0x1_0000_0000UL - range) % range)) return (int)(m >> 32);
        }
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public void Shuffle(Span<int> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}

/// <summary>The samplers long-tail methods use. <c>length</c> defaults to the number of labels (one pass
/// worth).</summary>
public static class Samplers
{
    /// <summary>The one sampler table: every spelling (the reference configs' included) to its sampler's name; flags,
    /// YAML and <see cref="Create"/> read it.</summary>
    public static NameTable<string> Aliases { get; } = new("sampler",
    [
        ("instance", "instance"), ("long-tailed", "instance"), ("default", "instance"),
        ("balanced", "balanced"), ("balance", "balanced"), ("class-balanced", "balanced"),
        ("sqrt", "sqrt"), ("square", "sqrt"), ("square-root", "sqrt"), ("reverse", "reverse"), ("class-aware",
            "class-aware"),
    ], "instance (long-tailed), balanced (balance), sqrt, reverse or class-aware");

    /// <summary>The samplers' own names (what <see cref="Aliases"/> resolves to), in table order.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Aliases.Names.Select(n => Aliases.Parse(n)).Distinct()];

    /// <summary>A fresh permutation of all items every epoch.</summary>
    public static ISampler Instance(IReadOnlyList<int> labels, int seed) => new InstanceSampler(Check(labels).Count,
        seed);

    /// <summary>Pick a class uniformly (among classes that have items), then one of its items uniformly.</summary>
    public static ISampler ClassBalanced(IReadOnlyList<int> labels, int seed, int? length = null) =>
        new WeightedClassSampler(Check(labels), seed, length, n => 1.0);

    /// <summary>Class probability proportional to sqrt(class count).</summary>
    public static ISampler SquareRoot(IReadOnlyList<int> labels, int seed, int? length = null) =>
        new WeightedClassSampler(Check(labels), seed, length, n => Math.Sqrt(n));

    /// <summary>Class probability proportional to 1 / class count (reverse sampling, BBN / H2T option).</summary>
    public static ISampler Reverse(IReadOnlyList<int> labels, int seed, int? length = null) =>
        new WeightedClassSampler(Check(labels), seed, length, n => 1.0 / n);

    /// <summary>Round-robin over classes (a shuffled class order per cycle), each class cycling through a
    /// shuffled list of its items, reshuffled when exhausted: exactly balanced over every full cycle.</summary>
    public static ISampler ClassAware(IReadOnlyList<int> labels, int seed, int? length = null) =>
        new ClassAwareSampler(Check(labels), seed, length);

    public static ISampler Create(string name, IReadOnlyList<int> labels, int seed, int? length = null) =>
        (Aliases.TryParse(name, out var kind) ? kind : name) switch
    {
        "instance" => length is null || length == labels.Count ? Instance(labels, seed)
            : throw new ArgumentException(
                $"the instance sampler always covers all {labels.Count} items; length {length} is not supported"),
        "balanced" => ClassBalanced(labels, seed, length),
        "sqrt" => SquareRoot(labels, seed, length),
        "reverse" => Reverse(labels, seed, length),
        "class-aware" => ClassAware(labels, seed, length),
        _ => throw new ArgumentException($"unknown sampler '{name}': expected one of {string.Join(", ", Names)}"),
    };

    static IReadOnlyList<int> Check(IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count == 0) throw new ArgumentException("cannot sample from an empty label list");
        for (int i = 0; i < labels.Count; i++)
            if (labels[i] < 0) throw new ArgumentException($"label {labels[i]} at index {i} is negative");
        return labels;
    }

    internal static List<int>[] ByClass(IReadOnlyList<int> labels)
    {
        int numClasses = labels.Max() + 1;
        var by = new List<int>[numClasses];
        for (int c = 0; c < numClasses; c++) by[c] = [];
        for (int i = 0; i < labels.Count; i++) by[labels[i]].Add(i);
        return by;
    }

    internal static int CheckLength(int? length, int count) => length switch
    {
        null => count,
        < 1 => throw new ArgumentOutOfRangeException(nameof(length), length, "sampler length must be >= 1"),
        _ => length.Value,
    };

    // Salt per sampler kind so two samplers with the same seed do not produce correlated streams.
    const long InstanceSalt = 0x1157, WeightedSalt = 0x3e16, AwareSalt = 0xa3a3;

    sealed class InstanceSampler(int count, int seed) : ISampler
    {
        public int Length => count;
        public int[] Indices(int epoch)
        {
            var idx = Enumerable.Range(0, count).ToArray();
            new DetRandom(InstanceSalt, seed, epoch).Shuffle(idx);
            return idx;
        }
    }

    sealed class WeightedClassSampler : ISampler
    {
        readonly int[][] byClass;
        readonly double[] cumulative;
        readonly int[] classOf; // class of each cumulative slot (classes without items are skipped)
        readonly int seed;

        public WeightedClassSampler(IReadOnlyList<int> labels, int seed, int? length, Func<int, double> weight)
        {
            Length = CheckLength(length, labels.Count);
            this.seed = seed;
            var by = ByClass(labels);
            var present = Enumerable.Range(0, by.Length).Where(c => by[c].Count > 0).ToArray();
            classOf = present;
            byClass = present.Select(c => by[c].ToArray()).ToArray();
            cumulative = new double[present.Length];
            double total = 0;
            for (int k = 0; k < present.Length; k++) { total += weight(byClass[k].Length); cumulative[k] = total; }
            for (int k = 0; k < present.Length; k++) cumulative[k] /= total;
            cumulative[^1] = 1.0;
        }

        public int Length { get; }

        public int[] Indices(int epoch)
        {
            var rng = new DetRandom(WeightedSalt, seed, epoch);
            var result = new int[Length];
            for (int i = 0; i < result.Length; i++)
            {
                int k = Array.BinarySearch(cumulative, rng.NextDouble());
                k = k < 0 ? ~k : k + 1; // first slot whose cumulative value exceeds the draw
                if (k >= cumulative.Length) k = cumulative.Length - 1;
                var items = byClass[k];
                result[i] = items[rng.Next(items.Length)];
            }
            return result;
        }
    }

    sealed class ClassAwareSampler : ISampler
    {
        readonly int[][] byClass;
        readonly int seed;

        public ClassAwareSampler(IReadOnlyList<int> labels, int seed, int? length)
        {
            Length = CheckLength(length, labels.Count);
            this.seed = seed;
            byClass = ByClass(labels).Where(l => l.Count > 0).Select(l => l.ToArray()).ToArray();
        }

        public int Length { get; }

        public int[] Indices(int epoch)
        {
            var rng = new DetRandom(AwareSalt, seed, epoch);
            var pools = byClass.Select(p => (int[])p.Clone()).ToArray();
            var next = new int[pools.Length];
            foreach (var p in pools) rng.Shuffle(p);
            var order = Enumerable.Range(0, pools.Length).ToArray();
            var result = new int[Length];
            for (int i = 0; i < result.Length; i++)
            {
                int slot = i % order.Length;
                if (slot == 0) rng.Shuffle(order);
                int c = order[slot];
                if (next[c] == pools[c].Length) { rng.Shuffle(pools[c]); next[c] = 0; }
                result[i] = pools[c][next[c]++];
            }
            return result;
        }
    }
}
