using H2T.Inference;
using H2T.Settings;
using H2T.Runs;
using H2T.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace H2T.Onnx;

/// <summary>
/// An exported model run by ONNX Runtime. Touches no TorchSharp type, so libtorch is never loaded. Pixels become
/// x / 255 here; the graph normalises. <see cref="InferenceSession.Run(IReadOnlyCollection{NamedOnnxValue})"/> is
/// thread-safe.
/// </summary>
internal sealed class OnnxModelRunner : IModelRunner
{
    readonly InferenceSession session;

    readonly string engine;

    /// <summary>An H2T.NET checkpoint's ONNX export, made in a temporary file that is gone once ONNX Runtime has read
    /// it.</summary>
    public static OnnxModelRunner FromCheckpoint(string checkpoint, int? threads)
    {
        var onnx = Path.Combine(Path.GetTempPath(), $"h2t-{Environment.ProcessId}-{Guid.NewGuid():N}.onnx");
        try
        {
            try { OnnxExporter.Export(checkpoint, onnx); }
            catch (NotSupportedException e) { throw new ConfigException(
                $"{checkpoint}: {e.Message}; run it on TorchSharp (--engine torchsharp)", "engine"); }
            return new OnnxModelRunner(onnx, threads, " (the checkpoint's fp32 export, made in memory)");
        }
        finally { File.Delete(onnx); }
    }

    public OnnxModelRunner(string path, int? threads, string engineNote = "")
    {
        engine = $"ONNX Runtime {OrtEnv.Instance().GetVersionString()}{engineNote}";
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: ONNX model not found", path);
        var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (threads is { } t) options.IntraOpNumThreads = t;
        try { session = new InferenceSession(path, options); }
        catch (OnnxRuntimeException e)
        {
            throw new DataFormatException($"{path}: not a loadable ONNX model: {FirstLine(e.Message)}");
        }
        finally { options.Dispose(); }
        try
        {
            Card = ModelCard.FromMetadata(path, session.ModelMetadata.CustomMetadataMap);
            if (!session.InputMetadata.ContainsKey("image") || !session.OutputMetadata.ContainsKey("logits"))
                throw new DataFormatException(
                    $"{path}: expected input 'image' and output 'logits', found inputs " +
                    $"[{string.Join(", ", session.InputMetadata.Keys)}], outputs " +
                    $"[{string.Join(", ", session.OutputMetadata.Keys)}]");
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    static string FirstLine(string s) => s.Split('\n')[0].Trim();

    public ModelCard Card { get; }
    public string Engine => engine;

    public float[] Logits(byte[] pixels, int count)
    {
        var p = Card.Preprocessing;
        var input = new float[pixels.Length];
        for (int i = 0; i < input.Length; i++) input[i] = pixels[i] / 255f;
        var tensor = new DenseTensor<float>(input, [count, p.Channels, p.Height, p.Width]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("image", tensor)], ["logits"]);
        return results[0].AsEnumerable<float>().ToArray();
    }

    public void Dispose() => session.Dispose();
}

/// <summary>ONNX Runtime for <see cref="ImageClassifier"/>, which finds this class when the application references
/// the package.</summary>
public sealed class OnnxRuntimeEngine : IOnnxRuntimeEngine
{
    /// <inheritdoc/>
    public IModelRunner Open(string onnxPath, int? threads) => new OnnxModelRunner(onnxPath, threads);

    /// <inheritdoc/>
    public IModelRunner FromCheckpoint(string checkpoint, int? threads) => OnnxModelRunner.FromCheckpoint(checkpoint,
        threads);
}
