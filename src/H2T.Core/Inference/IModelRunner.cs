using H2T.Runs;
namespace H2T.Inference;

/// <summary>An inference engine over preprocessed uint8 pixels (N x C x H x W, the card's size): logits N x K.
/// Implementations are thread-safe.</summary>
internal interface IModelRunner : IDisposable
{
    ModelCard Card { get; }
    string Engine { get; }
    float[] Logits(byte[] pixels, int count);
}
