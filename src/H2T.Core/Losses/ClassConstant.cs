using TorchSharp;
using static TorchSharp.torch;

namespace H2T.Losses;

/// <summary>
/// A per-class constant vector (weights, margins, log-priors) owned by a loss. Kept as doubles; a tensor copy is made
/// lazily for the device and dtype of the logits and cached, outside every dispose scope, until the loss is disposed.
/// </summary>
internal sealed class ClassConstant : IDisposable
{
    readonly double[] values;
    Tensor? cached;

    public ClassConstant(double[] values) => this.values = values;

    public IReadOnlyList<double> Values => values;

    /// <summary>The vector on <paramref name="like"/>'s device and dtype (shape (C)). Owned by this object: do not
    /// dispose.</summary>
    public Tensor On(Tensor like)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (cached is null || cached.dtype != like.dtype || cached.device_type != like.device_type
            || cached.device_index != like.device_index)
        {
            cached?.Dispose();
            // Built from the doubles each time the device/dtype changes, so float64 tests see full precision.
            cached = torch.tensor(values, dtype: like.dtype, device: like.device).DetachFromDisposeScope();
        }
        return cached;
    }

    bool disposed;

    public void Dispose()
    {
        disposed = true;
        cached?.Dispose();
        cached = null;
    }
}
