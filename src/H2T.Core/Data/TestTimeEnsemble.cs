using System.Globalization;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Data;

/// <summary>Which crops a <see cref="TestTimeEnsemble"/> takes (LIFT's <c>tte_mode</c>).</summary>
public enum TestTimeViews
{
    /// <summary>torchvision's FiveCrop: four corners and the centre (LIFT's default mode).</summary>
    FiveCrop,
    /// <summary>torchvision's TenCrop: the five crops, then the five crops of the horizontally flipped image.</summary>
    TenCrop,
}

/// <summary>
/// LIFT's test-time ensemble (Shi et al., ICML 2024): each image resized so its shorter side is the crop's shorter
/// side plus <see cref="Expand"/> pixels (torchvision <c>Resize(size + expand)</c>), cut into FiveCrop / TenCrop views
/// of the model's input size, every view classified, and the views' logits averaged. Built on the batch the plain
/// evaluation transform gives (N x C x H x W at the model's input size) with tensor ops: one bilinear resize
/// (align_corners false, then rounded to whole pixel values as torchvision rounds a uint8 tensor), slices, a flip.
/// </summary>
public sealed record TestTimeEnsemble
{
    /// <summary>LIFT's <c>expand</c> for its 224-pixel models (utils/config.py); applied in pixels whatever the
    /// input size, as LIFT's <c>Resize(resolution + expand)</c> does.</summary>
    public const int DefaultExpand = 24;

    /// <summary>Mode names, for flags, config values and the serve query parameter alike.</summary>
    public static NameTable<TestTimeViews> Modes { get; } = new("test-time ensemble mode",
        [("fivecrop", TestTimeViews.FiveCrop), ("tencrop", TestTimeViews.TenCrop)]);

    /// <summary>What <see cref="TryParse"/> takes, for error messages.</summary>
    public static string Expected => $"on / off ({Switches.Table.Expected}) or a mode ({Modes.Expected})";

    /// <summary>A test-time ensemble; <paramref name="expand"/> must be >= 1.</summary>
    public TestTimeEnsemble(TestTimeViews mode = TestTimeViews.FiveCrop, int expand = DefaultExpand)
    {
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown mode");
        if (expand < 1) throw new ArgumentOutOfRangeException(nameof(expand), expand,
            "test-time ensemble: expand must be >= 1 pixel");
        Mode = mode;
        Expand = expand;
    }

    public TestTimeViews Mode { get; }
    /// <summary>Pixels added to the shorter side before cropping.</summary>
    public int Expand { get; }
    /// <summary>Views per image: 5 or 10.</summary>
    public int ViewCount => Mode == TestTimeViews.FiveCrop ? 5 : 10;

    /// <summary>
    /// An on/off spelling (on: LIFT's default, five crops) or a mode name; off gives null. False for anything else.
    /// </summary>
    public static bool TryParse(string? text, out TestTimeEnsemble? ensemble, int expand = DefaultExpand)
    {
        ensemble = null;
        if (Switches.Table.TryParse(text, out var on))
        {
            if (on) ensemble = new TestTimeEnsemble(TestTimeViews.FiveCrop, expand);
            return true;
        }
        if (!Modes.TryParse(text, out var mode)) return false;
        ensemble = new TestTimeEnsemble(mode, expand);
        return true;
    }

    /// <summary>The enlarged size of an H x W input: torchvision's <c>Resize(int)</c> rule (shorter side to
    /// min(H, W) + expand, the longer side scaled and truncated).</summary>
    public (int Height, int Width) EnlargedSize(int height, int width)
    {
        int shorter = Math.Min(height, width), longer = Math.Max(height, width), target = shorter + Expand;
        int stretched = (int)((double)target * longer / shorter);
        return height <= width ? (target, stretched) : (stretched, target);
    }

    /// <summary>
    /// The views of a batch of pixel values (uint8, or float on the 0..255 scale) N x C x H x W: V x N x C x H x W,
    /// same dtype and device, in torchvision's order (top-left, top-right, bottom-left, bottom-right, centre; then
    /// the same of the flipped image for TenCrop).
    /// </summary>
    public Tensor Views(Tensor pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.dim() != 4)
            throw new ArgumentException(
                $"test-time ensemble: images of shape [{string.Join(", ", pixels.shape)}]: expected N x C x H x W");
        if (pixels.dtype != ScalarType.Byte && !pixels.is_floating_point())
            throw new ArgumentException($"test-time ensemble: images of dtype {pixels.dtype}: expected uint8 or float");
        int h = (int)pixels.shape[2], w = (int)pixels.shape[3];
        var (eh, ew) = EnlargedSize(h, w);
        using var scope = NewDisposeScope();
        var big = nn.functional.interpolate(pixels.to_type(ScalarType.Float32), [eh, ew],
            mode: InterpolationMode.Bilinear, align_corners: false).round_();
        var crops = FiveCrop(big, h, w);
        if (Mode == TestTimeViews.TenCrop) crops = [.. crops, .. FiveCrop(big.flip(3), h, w)];
        var views = stack(crops);
        var result = pixels.dtype == ScalarType.Byte ? views.to_type(ScalarType.Byte)
            : views.to_type(pixels.dtype);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The views of a normalised batch (as the data loader gives: <c>x * scale - shift</c> of uint8 pixels): back to
    /// pixel values, <see cref="Views"/>, normalised again, so a loader batch and a byte batch give the same views.
    /// </summary>
    public Tensor ViewsOfNormalized(Tensor normalized, Normalization norm)
    {
        ArgumentNullException.ThrowIfNull(normalized);
        ArgumentNullException.ThrowIfNull(norm);
        using var scope = NewDisposeScope();
        var (s, m) = norm.ForBytes();
        int c = s.Length;
        var scale = tensor(s, device: normalized.device).reshape(1, c, 1, 1);
        var shift = tensor(m, device: normalized.device).reshape(1, c, 1, 1);
        var pixels = normalized.to_type(ScalarType.Float32).add(shift).div_(scale).round_();
        var views = Views(pixels);
        return views.mul_(scale).sub_(shift).to_type(normalized.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The ensemble's logits N x K: <paramref name="forward"/> (images to logits) run on each view of
    /// <paramref name="views"/> (V x N x ...) in turn, so memory stays at one batch; the mean of the V logits (LIFT
    /// averages logits, not probabilities).</summary>
    public static Tensor MeanOfViews(Tensor views, Func<Tensor, Tensor> forward)
    {
        ArgumentNullException.ThrowIfNull(views);
        ArgumentNullException.ThrowIfNull(forward);
        using var scope = NewDisposeScope();
        var outputs = new Tensor[views.shape[0]];
        for (int v = 0; v < outputs.Length; v++) outputs[v] = forward(views[v]).to_type(ScalarType.Float32);
        return stack(outputs).mean([0]).MoveToOuterDisposeScope();
    }

    /// <summary>One line for logs: "test-time ensemble: 5 views (fivecrop of 32x32 from 56x56), mean of
    /// logits".</summary>
    public string Describe(int height, int width)
    {
        var (eh, ew) = EnlargedSize(height, width);
        return string.Create(CultureInfo.InvariantCulture,
            $"test-time ensemble: {ViewCount} views ({Modes.Names[(int)Mode]} of {height}x{width} from {eh}x{ew}), " +
            $"mean of logits");
    }

    static Tensor[] FiveCrop(Tensor big, int h, int w)
    {
        int bh = (int)big.shape[2], bw = (int)big.shape[3];
        // torchvision's center_crop offsets: Python's round, which rounds halves to even.
        int top = (int)Math.Round((bh - h) / 2.0, MidpointRounding.ToEven);
        int left = (int)Math.Round((bw - w) / 2.0, MidpointRounding.ToEven);
        Tensor Crop(int y, int x) => big.narrow(2, y, h).narrow(3, x, w);
        return [Crop(0, 0), Crop(0, bw - w), Crop(bh - h, 0), Crop(bh - h, bw - w), Crop(top, left)];
    }
}
