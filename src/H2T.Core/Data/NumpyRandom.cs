namespace H2T.Data;

/// <summary>
/// numpy's legacy global generator (<c>np.random.seed(int)</c>: MT19937 with <c>init_genrand</c>) and its
/// <c>shuffle</c> of a 1-D array. The long-tail reference codebases pick their subsets with exactly these calls,
/// so reproducing them bit for bit gives the same images (fixture: tests/H2T.Tests/Data/Fixtures).
/// </summary>
public sealed class NumpyRandom
{
    const int N = 624, M = 397;
    readonly uint[] mt = new uint[N];
    int pos;

    public NumpyRandom(uint seed)
    {
        mt[0] = seed;
        for (int i = 1; i < N; i++)
            mt[i] = unchecked(1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + (uint)i);
        pos = N;
    }

    public uint NextUInt32()
    {
        if (pos >= N) Twist();
        uint y = mt[pos++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    void Twist()
    {
        for (int i = 0; i < N; i++)
        {
            uint y = (mt[i] & 0x80000000u) | (mt[(i + 1) % N] & 0x7fffffffu);
            mt[i] = mt[(i + M) % N] ^ (y >> 1) ^ ((y & 1u) != 0 ? 0x9908b0dfu : 0u);
        }
        pos = 0;
    }

    /// <summary>Uniform in [0, max] by masked rejection, as numpy's legacy <c>random_interval</c> (32-bit
    /// draws).</summary>
    public uint Interval(uint max)
    {
        if (max == 0) return 0;
        uint mask = max;
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16;
        uint value;
        while ((value = NextUInt32() & mask) > max) { }
        return value;
    }

    /// <summary>In-place Fisher-Yates from the end, as <c>RandomState.shuffle</c> on a 1-D array.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = (int)Interval((uint)i);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
