using H2T.Runs;
namespace H2T.Inference;

/// <summary>An inference engine over preprocessed uint8 pixels (N x C x H x W, the card's size): logits N x K.
/// Implementations are thread-safe.</summary>
public interface IModelRunner : IDisposable
{
    /// <summary>What the model says about itself: classes, preprocessing.</summary>
    ModelCard Card { get; }

    /// <summary>Which runtime computes, for people ("TorchSharp (fp32)", "ONNX Runtime 1.x").</summary>
    string Engine { get; }

    /// <summary>Logits N x K, row-major, of <paramref name="count"/> preprocessed images.</summary>
    float[] Logits(byte[] pixels, int count);
}

/// <summary>ONNX Runtime as an engine: what the H2T.Onnx package adds to <see cref="ImageClassifier"/>.</summary>
public interface IOnnxRuntimeEngine
{
    /// <summary>An exported ONNX model.</summary>
    IModelRunner Open(string onnxPath, int? threads);

    /// <summary>An H2T.NET checkpoint's fp32 export, made in memory.</summary>
    IModelRunner FromCheckpoint(string checkpoint, int? threads);
}
