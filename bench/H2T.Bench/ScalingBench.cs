using System.Diagnostics;
using H2T.Data;
using H2T.Settings;
using SkiaSharp;

namespace H2T.Bench;

/// <summary>
/// Does loading scale with the dataset? Generates a long-tailed list-file dataset in the ImageNet-LT layout (1,000
/// classes, exponential profile, small JPEGs, <c>ImageNet_LT_train.txt</c> / <c>_test.txt</c>), then measures the list
/// parse (<c>DatasetCatalog.Load</c>), one full streamed epoch of the training loader (lazy decoding, the dataset's
/// random-resized-crop + flip, prefetch), images/s, and the process's peak resident memory. Run one size per process
/// (<c>--only scaling --images N</c>) so each peak belongs to one size.
/// </summary>
public static class ScalingBench
{
    public static object Run(int images, string root, int imageSize = 32)
    {
        var sw = Stopwatch.StartNew();
        var generated = Generate(root, images);
        var genSeconds = sw.Elapsed.TotalSeconds;
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var baseMb = self.WorkingSet64 / 1048576.0;

        sw.Restart();
        var splits = DatasetCatalog.Load(new DataConfig("imagenet-lt", root, ImageSize: imageSize));
        var loadSeconds = sw.Elapsed.TotalSeconds;
        using var loader = new BatchLoader(splits.Train, Samplers.Instance(splits.Train.Labels, 0), 128, splits.Norm,
            splits.TrainAugment, seed: 0, prefetch: 2);
        long seen = 0;
        double peakDuring = 0;
        sw.Restart();
        foreach (var b in loader.Epoch(0))
        {
            seen += b.Count;
            b.Dispose();
            if (seen % (128 * 50) == 0)
            {
                self.Refresh();
                peakDuring = Math.Max(peakDuring, self.WorkingSet64 / 1048576.0);
            }
        }
        var epochSeconds = sw.Elapsed.TotalSeconds;
        self.Refresh();
        var result = new
        {
            name = $"scaling-listfile-{images}",
            images = splits.Train.Count,
            classes = splits.NumClasses,
            largest_class = splits.TrainClassCounts.Max(),
            smallest_class = splits.TrainClassCounts.Min(),
            jpeg_size = generated,
            output_size = imageSize,
            generate_seconds = genSeconds,
            list_load_seconds = loadSeconds,
            epoch_seconds = epochSeconds,
            images_per_second = seen / epochSeconds,
            resident_mb_before_load = baseMb,
            resident_mb_during_epoch_max = Math.Max(peakDuring, self.WorkingSet64 / 1048576.0),
            peak_resident_mb = self.PeakWorkingSet64 / 1048576.0,
        };
        Console.WriteLine(
            $"scaling {images} images ({splits.NumClasses} classes, " +
            $"{splits.TrainClassCounts.Max()}..{splits.TrainClassCounts.Min()} per class): " +
                          $"list load {loadSeconds:F2} s, epoch {epochSeconds:F1} s = {seen / epochSeconds:F0} " +
                              $"img/s, peak resident {self.PeakWorkingSet64 / 1048576.0:F0} MB");
        return result;
    }

    /// <summary>Writes the JPEGs and lists once (reused if the train list already has the right count).</summary>
    static int Generate(string root, int images)
    {
        const int classes = 1000, side = 40;
        var trainList = Path.Combine(root, "ImageNet_LT_train.txt");
        if (File.Exists(trainList) && File.ReadLines(trainList).Count() == images) return side;
        Directory.CreateDirectory(root);
        // n_c = n_max * (1/100)^(c/999), scaled so the total is the requested count.
        var raw = Enumerable.Range(0, classes).Select(c => Math.Pow(0.01, c / (classes - 1.0))).ToArray();
        var scale = images / raw.Sum();
        var counts = raw.Select(r => Math.Max(1, (int)(r * scale))).ToArray();
        counts[0] += images - counts.Sum();
        var lines = new List<string>(images);
        var testLines = new List<string>(classes);
        Parallel.For(0, classes, c =>
        {
            var dir = Path.Combine(root, "train", $"c{c:D4}");
            Directory.CreateDirectory(dir);
            var rng = new Random(c);
            for (int i = 0; i < counts[c] + 1; i++)
            {
                var file = Path.Combine(dir, $"{i:D5}.jpg");
                using var bmp = new SKBitmap(side, side);
                using (var canvas = new SKCanvas(bmp))
                {
                    canvas.Clear(new SKColor((byte)(c * 37 % 256), (byte)(c * 91 % 256), (byte)(c * 53 % 256)));
                    using var paint = new SKPaint { Color = new SKColor((byte)rng.Next(256), (byte)rng.Next(256),
                        (byte)rng.Next(256)) };
                    canvas.DrawRect(rng.Next(side / 2), rng.Next(side / 2), side / 2, side / 2, paint);
                }
                using var data = bmp.Encode(SKEncodedImageFormat.Jpeg, 85);
                using (var fs = File.Create(file)) data.SaveTo(fs);
            }
        });
        for (int c = 0; c < classes; c++)
        {
            for (int i = 0; i < counts[c]; i++) lines.Add($"train/c{c:D4}/{i:D5}.jpg {c}");
            testLines.Add($"train/c{c:D4}/{counts[c]:D5}.jpg {c}"); // one held-out image per class as the "test" list
        }
        File.WriteAllLines(Path.Combine(root, "ImageNet_LT_test.txt"), testLines);
        File.WriteAllLines(trainList, lines);
        return side;
    }
}
