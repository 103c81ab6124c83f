using H2T.Data;
using H2T.Tests.Data;
using Xunit.Abstractions;

namespace H2T.Tests.Inference;

/// <summary>
/// Odd image files, written by PIL (Fixtures/make_odd_images.py from a real CIFAR-10 photo), decode as PIL's
/// <c>Image.open(p).convert("RGB" | "L")</c> gives them, which is what torchvision's loaders feed a model. The
/// expected pixels are PIL's own output, committed beside each file.
/// </summary>
public sealed class OddImageTests(ITestOutputHelper output)
{
    static string Folder => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Inference", "Fixtures",
        "odd-images");

    /// <summary>(file, PIL mode, largest allowed per-pixel difference, mean allowed).</summary>
    public static TheoryData<string, string, int, double> Cases => new()
    {
        { "rgb.png", "RGB", 0, 0 }, { "rgb.png", "L", 1, 0.5 },
        { "rgba.png", "RGB", 0, 0 },                 // alpha dropped, colours not premultiplied
        { "palette.png", "RGB", 0, 0 },
        { "grey.png", "RGB", 0, 0 }, { "grey.png", "L", 0, 0 },
        { "grey.jpg", "RGB", 0, 0 }, { "grey.jpg", "L", 0, 0 },
        { "exif-rotated.jpg", "RGB", 2, 0.5 },        // orientation tag not applied, as PIL.Image.open does not
        { "cmyk.jpg", "RGB", 2, 0.5 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void DecodesAsPilConvertDoes(string file, string mode, int maxDiff, double meanDiff)
    {
        int c = mode == "RGB" ? 3 : 1;
        var (h, w) = (30, 40);
        var chw = new byte[c * h * w];
        ImageDecoder.Decode(Path.Combine(Folder, file), new DecodePlan(new ImageShape(c, h, w)), chw);
        var pil = File.ReadAllBytes(Path.Combine(Folder, $"{file}.{mode}.raw")); // HWC
        int worst = 0;
        long sum = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++)
                {
                    int d = Math.Abs(chw[k * h * w + y * w + x] - pil[(y * w + x) * c + k]);
                    worst = Math.Max(worst, d);
                    sum += d;
                }
        double mean = (double)sum / chw.Length;
        output.WriteLine($"{file} {mode}: max {worst}, mean {mean:F3}");
        Assert.True(worst <= maxDiff && mean <= meanDiff,
            $"{file} as {mode}: max difference {worst} (allowed {maxDiff}), mean {mean:F3} (allowed {meanDiff})");
    }

    [Fact]
    public void SixteenBitGreyIsScaledToEightBitsNotClippedAsPilDoes()
    {
        // PIL opens a 16-bit grey PNG as mode "I" and convert("L") clips every value above 255 to 255 (a white image);
        // we scale to 8 bits, giving back the 8-bit picture the 16-bit file was made from (v * 257).
        var chw = new byte[30 * 40];
        ImageDecoder.Decode(Path.Combine(Folder, "grey16.png"), new DecodePlan(new ImageShape(1, 30, 40)), chw);
        var eight = File.ReadAllBytes(Path.Combine(Folder, "grey.png.L.raw"));
        Assert.Equal(eight, chw);
        var pil = File.ReadAllBytes(Path.Combine(Folder, "grey16.png.L.raw"));
        Assert.True(pil.Count(v => v == 255) > pil.Length * 9 / 10,
            "PIL's convert('L') of the 16-bit file is expected to be (nearly) all 255");
    }
}
