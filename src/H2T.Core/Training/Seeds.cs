using H2T.Runs;
namespace H2T.Training;

/// <summary>
/// Derives independent, reproducible seeds for every random stream of a run from (training seed, epoch, stream):
/// sampling, augmentation, mixup, H2T channel draws. A resumed run therefore replays exactly what an uninterrupted
/// one would have drawn, without saving generator states.
/// </summary>
public static class Seeds
{
    public const int Sampler = 1, Augment = 2, Mixup = 3, MixupPermutation = 4, Fusion = 5, TailSampler = 6,
        HeadSampler = 7, HeadAugment = 8, TorchGlobal = 9, CmoSampler = 10, CmoAugment = 11, Cmo = 12,
        CacheView = 13, CacheBatchNorm = 14, CacheTailPick = 15, CacheHeadPick = 16, CacheBatchNormHead = 17,
            ReplayOrder = 18;

    public static int Derive(int seed, int epoch, int stream)
    {
        // SplitMix64 finaliser over the packed triple: well mixed, stable across .NET versions (unlike HashCode).
        ulong z = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)epoch * 0xBF58476D1CE4E5B9UL +
            (ulong)(uint)stream * 0x94D049BB133111EBUL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }
}
