using System.Text.Json.Serialization;

namespace H2T.Data;

/// <summary>
/// The evaluation transform a model was trained for, as checkpoints and exported models record it: decode to
/// <see cref="Channels"/> (RGB, or ITU-R 601 luma for one channel, as PIL's <c>convert("L")</c>), then either stretch
/// to <see cref="Height"/> x <see cref="Width"/> (<see cref="ResizeShorter"/> 0; a no-op for images of that size) or
/// resize the shorter side to <see cref="ResizeShorter"/> (bilinear) and center-crop; then <c>(x / 255 - mean) /
/// std</c>.
/// </summary>
public sealed record ImagePreprocessing(int Channels, int Height, int Width, int ResizeShorter, float[] Mean,
    float[] Std)
{
    [JsonIgnore] public DecodePlan Plan => new(new ImageShape(Channels, Height, Width), ResizeShorter);
    [JsonIgnore] public Normalization Norm => new(Mean, Std);
    [JsonIgnore] public ImageShape Shape => new(Channels, Height, Width);

    /// <summary>The test split's transform of a loaded dataset.</summary>
    public static ImagePreprocessing Of(DatasetSplits splits)
    {
        ArgumentNullException.ThrowIfNull(splits);
        var plan = splits.TestPlan;
        return new(plan.Output.Channels, plan.Output.Height, plan.Output.Width, plan.ResizeShorter,
            [.. splits.Norm.Mean], [.. splits.Norm.Std]);
    }

    /// <summary>One line for logs and metadata: "3x32x32, mean [...] std [...]" or "resize 256, crop 3x224x224,
    /// ...".</summary>
    public string Describe() =>
        (ResizeShorter > 0 ? $"resize shorter side to {ResizeShorter}, center-crop {Shape}" : $"{Shape}") +
        $", mean [{string.Join(", ", Mean.Select(Format))}], std [{string.Join(", ", Std.Select(Format))}]";

    static string Format(float v) => v.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture);

    public void Validate(string origin)
    {
        if (Channels is not (1 or
            3)) throw new DataFormatException($"{origin}: preprocessing channels {Channels}: expected 1 or 3");
        if (Height < 1 ||
            Width < 1) throw new DataFormatException(
            $"{origin}: preprocessing size {Height}x{Width}: expected positive");
        if (Mean.Length != Channels || Std.Length != Channels || Std.Any(s => !(s > 0)))
            throw new DataFormatException(
                $"{origin}: preprocessing mean/std: expected {Channels} value(s) each, std > 0");
    }
}
