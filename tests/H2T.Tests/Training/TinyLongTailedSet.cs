using H2T.Settings;
using H2T.Tests.Data;

namespace H2T.Tests.Training;

/// <summary>
/// A tiny, learnable Fashion-MNIST-format dataset (real IDX .gz files): 10 classes, each a bright 6x6 block at its own
/// place on a noisy 28x28 background. 40 train images per class before the long-tail cut, 10 test images per class.
/// </summary>
public sealed class TinyLongTailedSet : IDisposable
{
    readonly TempDir dir = new();

    /// <param name="perClassTrain">Training images per class before the long-tail cut (40 by default).</param>
    public TinyLongTailedSet(int perClassTrain = 40, int perClassTest = 10)
    {
        Write("train", perClassTrain, seed: 1);
        Write("t10k", perClassTest, seed: 2);
    }

    public string Path => dir.Path;

    public DataConfig Config(double imbFactor = 10) => new(Dataset: "fashion-mnist", DataPath: dir.Path,
        ImbFactor: imbFactor);

    void Write(string prefix, int perClass, int seed)
    {
        int n = perClass * 10;
        var rng = new Random(seed);
        var labels = new byte[n];
        var pixels = new byte[n * 28 * 28];
        for (int i = 0; i < n; i++)
        {
            int c = i % 10;
            labels[i] = (byte)c;
            int top = c / 5 * 12 + 4, left = c % 5 * 5 + 1;
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++)
                {
                    bool on = y >= top && y < top + 6 && x >= left && x < left + 6;
                    pixels[i * 784 + y * 28 + x] = (byte)(on ? 200 + rng.Next(56) : rng.Next(60));
                }
        }
        var images = DataTestFiles.IdxImages(n, 28, 28, k => pixels[k]);
        dir.Write($"{prefix}-images-idx3-ubyte.gz", DataTestFiles.Gzip(images));
        dir.Write($"{prefix}-labels-idx1-ubyte.gz", DataTestFiles.Gzip(DataTestFiles.IdxLabels(labels)));
    }

    public void Dispose() => dir.Dispose();
}
