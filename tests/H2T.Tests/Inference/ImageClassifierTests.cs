using H2T.Data;
using H2T.Onnx;
using H2T.Inference;
using H2T.Tests.Data;
using SkiaSharp;

namespace H2T.Tests.Inference;

/// <summary>The library API: <see cref="ImageClassifier"/> over a checkpoint (TorchSharp) and its ONNX
/// export.</summary>
public sealed class ImageClassifierTests : IDisposable
{
    readonly TempDir dir = new();
    readonly string checkpoint, onnx;

    public ImageClassifierTests()
    {
        checkpoint = InferenceFixtures.Checkpoint(dir.Path, "resnet8", "linear", seed: 11);
        onnx = Path.Combine(dir.Path, "m.onnx");
        OnnxExporter.Export(checkpoint, onnx);
    }

    public void Dispose() => dir.Dispose();

    public static TheoryData<bool> Engines => new() { false, true };

    string Model(bool useOnnx) => useOnnx ? onnx : checkpoint;

    [Theory]
    [MemberData(nameof(Engines))]
    public void FileStreamAndPixelsGiveTheSamePrediction(bool useOnnx)
    {
        using var model = ImageClassifier.Load(Model(useOnnx));
        var path = InferenceFixtures.TestImages()[31];
        var fromFile = model.Predict(path, topK: 3);
        using var stream = File.OpenRead(path);
        var fromStream = model.Predict(stream, topK: 3);
        // A stream that cannot seek (a download, a decompressor) gives the same.
        var gz = new MemoryStream();
        using (var z = new System.IO.Compression.GZipStream(gz, System.IO.Compression.CompressionLevel.Fastest,
            leaveOpen: true)) z.Write(File.ReadAllBytes(path));
        gz.Position = 0;
        using var unseekable = new System.IO.Compression.GZipStream(gz,
            System.IO.Compression.CompressionMode.Decompress);
        Assert.False(unseekable.CanSeek);
        Assert.Equal(fromFile.Top, model.Predict(unseekable, topK: 3).Top);
        using var bitmap = SKBitmap.Decode(path);
        var rgb = new byte[bitmap.Width * bitmap.Height * 3];
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                int o = (y * bitmap.Width + x) * 3;
                (rgb[o], rgb[o + 1], rgb[o + 2]) = (c.Red, c.Green, c.Blue);
            }
        var fromPixels = model.Predict(rgb, bitmap.Width, bitmap.Height, topK: 3);
        Assert.Equal(3, fromFile.Top.Count);
        Assert.Equal(fromFile.Top, fromStream.Top);
        Assert.Equal(fromFile.Top, fromPixels.Top);
        Assert.Equal(InferenceFixtures.CifarClasses[fromFile.Best.Index], fromFile.Best.Name);
        Assert.InRange(fromFile.Top.Sum(t => t.Probability), 0, 1.0001);
        Assert.True(fromFile.Top[0].Probability >= fromFile.Top[1].Probability);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void ParallelCallersGetTheSequentialAnswers(bool useOnnx)
    {
        using var model = ImageClassifier.Load(Model(useOnnx));
        var images = InferenceFixtures.TestImages();
        var sequential = images.Select(p => model.Predict(p, 2)).ToArray();
        var batch = model.PredictBatch(images, 2);
        var parallel = new Prediction[images.Length];
        Parallel.For(0, images.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 },
            i => parallel[i] = model.Predict(images[i], 2));
        for (int i = 0; i < images.Length; i++)
        {
            Assert.Equal(sequential[i].Top.Select(t => t.Index), parallel[i].Top.Select(t => t.Index));
            Assert.Equal(sequential[i].Best.Index, batch[i].Best.Index);
            Assert.Equal(sequential[i].Best.Probability, parallel[i].Best.Probability, 1e-6f);
        }
    }

    [Fact]
    public void TheTwoEnginesAgreeAndDisposeIsFinal()
    {
        var image = InferenceFixtures.TestImages()[5];
        var torch = ImageClassifier.Load(checkpoint);
        using var ort = ImageClassifier.Load(onnx);
        Assert.Equal(torch.Predict(image).Best.Index, ort.Predict(image).Best.Index);
        Assert.Contains("TorchSharp", torch.Engine);
        torch.Dispose();
        torch.Dispose(); // twice is harmless
        Assert.Throws<ObjectDisposedException>(() => torch.Predict(image));
    }

    [Fact]
    public void AGreyModelTakesColourImagesAndTheReverse()
    {
        var grey = InferenceFixtures.Checkpoint(dir.Path, "resnet8", "linear", seed: 2, pre: new ImagePreprocessing(1,
            28, 28, 0, [0.286f], [0.353f]));
        using var model = ImageClassifier.Load(grey);
        var colour = model.Predict(InferenceFixtures.TestImages()[0]); // 32x32 RGB JPEG: luma, stretched to 28x28
        Assert.InRange(colour.Best.Index, 0, 9);
        using var rgbModel = ImageClassifier.Load(checkpoint);
        var greyFile = Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Inference", "Fixtures", "odd-images",
            "grey.jpg");
        Assert.InRange(rgbModel.Predict(greyFile).Best.Index, 0, 9);
    }

    [Fact]
    public void BadArgumentsSayWhatIsWrong()
    {
        using var model = ImageClassifier.Load(checkpoint);
        var e = Assert.Throws<ArgumentException>(() => model.Predict(new byte[10], 2, 2));
        Assert.Contains("12", e.Message);
        Assert.Throws<FileNotFoundException>(() => ImageClassifier.Load(Path.Combine(dir.Path, "nothing.onnx")));
        Assert.Throws<DataFormatException>(() => ImageClassifier.Load(dir.Path));
        using var stream = new MemoryStream([1, 2, 3]);
        Assert.Throws<DataFormatException>(() => model.Predict(stream));
    }
}
