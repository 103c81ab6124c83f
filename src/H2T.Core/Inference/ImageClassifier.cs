using H2T.Runs;
using H2T.Data;
using H2T.Evaluation;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;

namespace H2T.Inference;

/// <summary>Options for <see cref="ImageClassifier.Load"/>.</summary>
public sealed record ClassifierOptions
{
    /// <summary>TorchSharp checkpoints: the backbone's arithmetic (default: the precision it was trained in, as
    /// eval).</summary>
    public ComputePrecision? Precision { get; init; }
    /// <summary>Intra-op threads of libtorch or ONNX Runtime (default: all cores / ONNX Runtime's choice).</summary>
    public int? Threads { get; init; }
    /// <summary>TorchSharp checkpoints: what runs them; null (auto) picks the faster for the model
    /// (<see cref="ImageClassifier.EngineFor"/>). An ONNX model always runs on ONNX Runtime.</summary>
    public InferenceEngine? Engine { get; init; }
    /// <summary>LIFT's test-time ensemble for every prediction (null: one view, the plain transform); a call can
    /// ask otherwise (<see cref="ImageClassifier.Logits(byte[], int, TestTimeEnsemble?)"/>).</summary>
    public TestTimeEnsemble? TestTime { get; init; }
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

    ImageClassifier(IModelRunner runner, TestTimeEnsemble? testTime)
    {
        this.runner = runner;
        TestTime = testTime;
    }

    /// <summary>The test-time ensemble every prediction uses unless a call says otherwise (null: none).</summary>
    public TestTimeEnsemble? TestTime { get; }

    /// <summary>An ONNX model (by content or a .onnx name) or an H2T.NET checkpoint.</summary>
    public static ImageClassifier Load(string path, ClassifierOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new();
        if (Directory.Exists(path)) throw new DataFormatException(
            $"{path}: is a folder; expected a checkpoint (.ckpt) or an ONNX model (.onnx)");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: model not found", path);
        if (!IsCheckpoint(path))
        {
            if (options.Engine == InferenceEngine.TorchSharp)
                throw new ConfigException(
                    $"{path}: an ONNX model runs on ONNX Runtime only (engine torchsharp is for H2T.NET checkpoints)",
                    "engine");
            return new ImageClassifier(RequireOnnxRuntime(path).Open(path, options.Threads), options.TestTime);
        }
        var meta = Checkpoint.ReadMeta(path);
        var engine = options.Engine ?? EngineFor(meta.Architecture,
            options.Precision ?? ComputeNames.Recorded(meta.Precision, path));
        if (engine == InferenceEngine.TorchSharp) return new ImageClassifier(new TorchModelRunner(path,
            options.Precision, options.Threads), options.TestTime);
        // ONNX Runtime asked for by name runs the fp32 export whatever the checkpoint trained in; bf16 asked for with
        // it is refused.
        if (options.Precision is { } asked && asked != ComputePrecision.Fp32)
            throw new ConfigException(
                $"{path}: ONNX Runtime runs the fp32 export; {MixedPrecision.Name(asked)} runs on TorchSharp " +
                $"(--engine torchsharp, or --precision fp32)", "engine");
        return new ImageClassifier(RequireOnnxRuntime(path).FromCheckpoint(path, options.Threads),
            options.TestTime);
    }

    /// <summary>
    /// What <c>auto</c> runs a checkpoint on: ONNX Runtime for the ImageNet ResNets in fp32 when the application
    /// references H2T.Onnx, where it is the faster (docs/performance.md, "Inference": the gap is in libtorch's
    /// convolutions); TorchSharp for the CIFAR ResNets (the two are level there), for bf16, which the export does not
    /// carry, and without H2T.Onnx.
    /// </summary>
    public static InferenceEngine EngineFor(string architecture, ComputePrecision precision) =>
        precision == ComputePrecision.Fp32 && ModelFactory.IsImageNetResNet(architecture) &&
            OnnxRuntime is not null
            ? InferenceEngine.OnnxRuntime : InferenceEngine.TorchSharp;

    static IOnnxRuntimeEngine? OnnxRuntime => OptionalPackage.FromOnnx<IOnnxRuntimeEngine>();

    static IOnnxRuntimeEngine RequireOnnxRuntime(string path) => OnnxRuntime
        ?? throw new ConfigException($"{path}: {OptionalPackage.Missing(OptionalPackage.Onnx, "ONNX Runtime")}",
            "engine");

    /// <summary>H2T.NET checkpoints start with their magic; a torch.save file is refused; anything else goes to ONNX
    /// Runtime.</summary>
    static bool IsCheckpoint(string path)
    {
        if (H2T.Runs.Checkpoint.HasMagic(path)) return true;
        if (H2T.Interop.TorchSaveReader.LooksLikeTorchSave(path))
            throw new DataFormatException(
                $"{path}: a PyTorch file (torch.save): bring it in with 'h2t import' first, then predict with the " +
                $"checkpoint it writes");
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

    /// <summary>Interleaved 8-bit RGB, row-major; resized / cropped / turned grey as the model's preprocessing
    /// says.</summary>
    public Prediction Predict(ReadOnlySpan<byte> rgb, int width, int height, int topK = 5)
    {
        var pixels = new byte[Card.Preprocessing.Shape.Size];
        ImageDecoder.FromRgb(rgb, width, height, Card.Preprocessing.Plan, pixels);
        return FromPixels(pixels, 1, topK)[0];
    }

    /// <summary>Image files decoded in parallel and classified in one forward pass. A file that does not decode throws
    /// (<see cref="DataFormatException"/> / <see cref="FileNotFoundException"/>) naming it; <c>h2t predict</c> reports
    /// such
    /// files per line instead.</summary>
    public IReadOnlyList<Prediction> PredictBatch(IReadOnlyList<string> imagePaths, int topK = 5)
    {
        ArgumentNullException.ThrowIfNull(imagePaths);
        if (imagePaths.Count == 0) return [];
        var (pixels, errors) = PredictionJob.DecodeFiles(imagePaths.Count, i => imagePaths[i], i => imagePaths[i],
            Card.Preprocessing.Plan);
        if (errors.FirstOrDefault(e =>
            e is not null) is { } first) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
        return FromPixels(pixels, imagePaths.Count, topK);
    }

    /// <summary>Logits N x K (row-major) of preprocessed uint8 pixels N x C x H x W at the model's input
    /// size.</summary>
    public float[] Logits(byte[] pixels, int count) => Logits(pixels, count, TestTime);

    /// <summary>Logits N x K of preprocessed pixels with <paramref name="testTime"/>'s ensemble (null: one view):
    /// each view is run through the model as a batch of <paramref name="count"/> and the views' logits are
    /// averaged.</summary>
    public float[] Logits(byte[] pixels, int count, TestTimeEnsemble? testTime)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (count < 1 || pixels.Length != (long)count * Card.Preprocessing.Shape.Size)
            throw new ArgumentException($"{pixels.Length} bytes for {count} image(s) of {Card.Preprocessing.Shape}");
        if (testTime is null) return runner.Logits(pixels, count);
        // The views are tensor ops, so an ONNX model with an ensemble loads libtorch too.
        TorchRuntime.Initialize();
        var shape = Card.Preprocessing.Shape;
        using var scope = TorchSharp.torch.NewDisposeScope();
        var views = testTime.Views(TorchSharp.torch.tensor(pixels, [count, shape.Channels, shape.Height,
            shape.Width]));
        var mean = TestTimeEnsemble.MeanOfViews(views, view =>
            TorchSharp.torch.tensor(runner.Logits(view.contiguous().data<byte>().ToArray(), count),
                [count, ClassNames.Count]));
        return mean.data<float>().ToArray();
    }

    public IReadOnlyList<Prediction> FromPixels(byte[] pixels, int count, int topK = 5) =>
        FromPixels(pixels, count, topK, TestTime);

    /// <summary>Predictions of preprocessed pixels with <paramref name="testTime"/>'s ensemble (null: one
    /// view).</summary>
    public IReadOnlyList<Prediction> FromPixels(byte[] pixels, int count, int topK, TestTimeEnsemble? testTime)
    {
        var logits = Logits(pixels, count, testTime);
        int k = ClassNames.Count;
        return [.. Enumerable.Range(0, count).Select(i => Prediction.FromLogits(logits.AsSpan(i * k, k), ClassNames,
            topK))];
    }

    /// <summary>
    /// The model on a labelled image source (its pixels already at the model's input size, as a dataset's test source
    /// is): Head / Medium / Tail / All, per class, ECE. The next batch is read on the thread pool while the model runs.
    /// </summary>
    public EvaluationResult Evaluate(IImageSource images, ClassGroups groups, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(groups);
        if (images.Shape != Card.Preprocessing.Shape)
            throw new DataFormatException(
                $"{images.Describe(0)}: images of {images.Shape}, the model takes {Card.Preprocessing.Shape}");
        int size = images.Shape.Size, k = ClassNames.Count;
        var acc = new MetricAccumulator(k);
        (byte[] Pixels, long[] Labels) Read(int start)
        {
            int n = Math.Min(batchSize, images.Count - start);
            var pixels = new byte[(long)n * size];
            Parallel.For(0, n, i => images.ReadInto(start + i, pixels.AsSpan(i * size, size)));
            return (pixels, [.. Enumerable.Range(start, n).Select(i => (long)images.Labels[i])]);
        }
        var next = Task.Run(() => Read(0));
        for (int start = 0; start < images.Count; start += batchSize)
        {
            var (pixels, labels) = next.GetAwaiter().GetResult();
            if (start + batchSize < images.Count)
            {
                int from = start + batchSize;
                next = Task.Run(() => Read(from));
            }
            var logits = Logits(pixels, labels.Length);
            using var scope = TorchSharp.torch.NewDisposeScope();
            acc.Add(TorchSharp.torch.tensor(logits, [labels.Length, k]), TorchSharp.torch.tensor(labels));
        }
        return acc.Result(groups.Head, groups.Medium, groups.Tail);
    }

    /// <summary>What <c>h2t eval</c> runs a checkpoint on: <paramref name="engine"/> if given, else
    /// <see cref="EngineFor"/> its architecture in <paramref name="precision"/> (default: the checkpoint's).</summary>
    public static InferenceEngine EvaluationEngine(string checkpoint, ComputePrecision? precision,
        InferenceEngine? engine)
    {
        if (engine is { } chosen) return chosen;
        var meta = Checkpoint.ReadMeta(checkpoint);
        return EngineFor(meta.Architecture, precision ?? ComputeNames.Recorded(meta.Precision, checkpoint));
    }

    /// <summary>
    /// <c>h2t eval</c> on ONNX Runtime: the checkpoint's fp32 export run over the test set of its data (or of
    /// <paramref name="dataset"/>), with the data found as TorchSharp's path finds it (<see
    /// cref="CheckpointData.ForEvaluation"/>).
    /// </summary>
    public static CheckpointEvaluation EvaluateOnOnnxRuntime(string checkpoint, string? dataset = null,
        string? dataPath = null, ComputePrecision? precision = null,
        int? threads = null, int batchSize = 256, TestTimeEnsemble? testTime = null)
    {
        var meta = Checkpoint.ReadMeta(checkpoint);
        var splits = DatasetCatalog.Load(CheckpointData.ForEvaluation(checkpoint, meta, dataset, dataPath));
        using var model = Load(checkpoint, new ClassifierOptions { Engine = InferenceEngine.OnnxRuntime,
            Precision = precision, Threads = threads, TestTime = testTime });
        if (model.ClassNames.Count != splits.NumClasses)
            throw new ConfigException(
                $"{checkpoint}: {model.ClassNames.Count} classes, {splits.Name} has {splits.NumClasses}");
        return new CheckpointEvaluation(meta, splits, model.Evaluate(splits.Test, splits.Groups, batchSize),
            ComputePrecision.Fp32, model.Engine) { TestTime = testTime };
    }

    public void Dispose() => runner.Dispose();
}
