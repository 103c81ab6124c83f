using H2T.Data;
using H2T.Settings;

namespace H2T.Inference;

/// <summary>Options for <see cref="ImageClassifier.Load"/>.</summary>
public sealed record ClassifierOptions
{
    /// <summary>TorchSharp checkpoints: the backbone's arithmetic (default: the precision it was trained in, as eval).</summary>
    public ComputePrecision? Precision { get; init; }
    /// <summary>Intra-op threads of libtorch or ONNX Runtime (default: all cores / ONNX Runtime's choice).</summary>
    public int? Threads { get; init; }
}

/// <summary>
/// A trained classifier for new images: an H2T.NET checkpoint (run by TorchSharp, as <c>h2t eval</c> runs it) or an
/// exported ONNX model (run by ONNX Runtime, without loading libtorch). Preprocessing and class names come from the
/// model. Thread-safe; dispose it to free native memory.
/// <code>
/// using var model = ImageClassifier.Load("runs/stage2/best.ckpt");
/// var best = model.Predict("cat.jpg").Best;   // Index, Name, Probability
/// </code>
/// </summary>
public sealed class ImageClassifier : IDisposable
{
    readonly IModelRunner runner;

    ImageClassifier(IModelRunner runner) => this.runner = runner;

    /// <summary>An ONNX model (by content or a .onnx name) or an H2T.NET checkpoint.</summary>
    public static ImageClassifier Load(string path, ClassifierOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new();
        if (Directory.Exists(path)) throw new DataFormatException($"{path}: is a folder; expected a checkpoint (.ckpt) or an ONNX model (.onnx)");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: model not found", path);
        return new ImageClassifier(IsCheckpoint(path)
            ? new TorchModelRunner(path, options.Precision, options.Threads)
            : new OnnxModelRunner(path, options.Threads));
    }

    /// <summary>H2T.NET checkpoints start with their magic; a torch.save file is refused; anything else goes to ONNX Runtime.</summary>
    static bool IsCheckpoint(string path)
    {
        if (H2T.Runs.Checkpoint.HasMagic(path)) return true;
        if (H2T.Interop.TorchSaveReader.LooksLikeTorchSave(path))
            throw new DataFormatException($"{path}: a PyTorch file (torch.save): bring it in with 'h2t import' first, then predict with the checkpoint it writes");
        return false;
    }

    public ModelCard Card => runner.Card;
    public IReadOnlyList<string> ClassNames => runner.Card.ClassNames;
    /// <summary>Which runtime computes ("TorchSharp (fp32)", "ONNX Runtime 1.x").</summary>
    public string Engine => runner.Engine;

    public Prediction Predict(string imagePath, int topK = 5) => PredictBatch([imagePath], topK)[0];

    public Prediction Predict(Stream image, int topK = 5)
    {
        ArgumentNullException.ThrowIfNull(image);
        var pixels = new byte[Card.Preprocessing.Shape.Size];
        ImageDecoder.Decode(image, Card.Preprocessing.Plan, pixels, "image stream");
        return FromPixels(pixels, 1, topK)[0];
    }

    /// <summary>Interleaved 8-bit RGB, row-major; resized / cropped / turned grey as the model's preprocessing says.</summary>
    public Prediction Predict(ReadOnlySpan<byte> rgb, int width, int height, int topK = 5)
    {
        var pixels = new byte[Card.Preprocessing.Shape.Size];
        ImageDecoder.FromRgb(rgb, width, height, Card.Preprocessing.Plan, pixels);
        return FromPixels(pixels, 1, topK)[0];
    }

    /// <summary>Image files decoded in parallel and classified in one forward pass. A file that does not decode throws
    /// (<see cref="DataFormatException"/> / <see cref="FileNotFoundException"/>) naming it; <c>h2t predict</c> reports such
    /// files per line instead.</summary>
    public IReadOnlyList<Prediction> PredictBatch(IReadOnlyList<string> imagePaths, int topK = 5)
    {
        ArgumentNullException.ThrowIfNull(imagePaths);
        if (imagePaths.Count == 0) return [];
        var (pixels, errors) = PredictionJob.DecodeFiles(imagePaths.Count, i => imagePaths[i], i => imagePaths[i], Card.Preprocessing.Plan);
        if (errors.FirstOrDefault(e => e is not null) is { } first) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        return FromPixels(pixels, imagePaths.Count, topK);
    }

    /// <summary>Logits N x K (row-major) of preprocessed uint8 pixels N x C x H x W at the model's input size.</summary>
    public float[] Logits(byte[] pixels, int count)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (count < 1 || pixels.Length != (long)count * Card.Preprocessing.Shape.Size)
            throw new ArgumentException($"{pixels.Length} bytes for {count} image(s) of {Card.Preprocessing.Shape}");
        return runner.Logits(pixels, count);
    }

    public IReadOnlyList<Prediction> FromPixels(byte[] pixels, int count, int topK = 5)
    {
        var logits = Logits(pixels, count);
        int k = ClassNames.Count;
        return [.. Enumerable.Range(0, count).Select(i => Prediction.FromLogits(logits.AsSpan(i * k, k), ClassNames, topK))];
    }

    public void Dispose() => runner.Dispose();
}
