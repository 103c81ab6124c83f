using H2T.Runs;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Inference;

/// <summary>
/// A checkpoint run by TorchSharp exactly as <c>h2t eval</c> runs it: eval mode, no_grad, the BatchNorm-folded
/// backbone where the architecture has one, the checkpoint's precision unless told otherwise, pixels normalised by
/// the same tensor ops as the data loader. One forward at a time (a lock): TorchSharp modules are not re-entrant,
/// and libtorch's own threads already use the cores.
/// </summary>
internal sealed class TorchModelRunner : IModelRunner
{
    readonly Checkpoint.Models models;
    readonly Backbone? folded;
    readonly Tensor scale, shift;
    readonly Lock gate = new();
    bool disposed;

    public TorchModelRunner(string checkpoint, ComputePrecision? precision, int? threads)
    {
        TorchRuntime.Initialize(threads);
        Card = ModelCard.FromCheckpoint(checkpoint);
        models = Checkpoint.Open(checkpoint, precision: precision);
        try
        {
            models.Backbone.eval();
            models.Head.eval();
            using (no_grad()) folded = models.Backbone.FoldedForInference();
            var p = Card.Preprocessing;
            var (s, m) = p.Norm.ForBytes();
            scale = tensor(s).reshape(1, p.Channels, 1, 1).DetachFromDisposeScope();
            shift = tensor(m).reshape(1, p.Channels, 1, 1).DetachFromDisposeScope();
            Precision = models.Backbone.Precision;
        }
        catch
        {
            models.Dispose();
            throw;
        }
    }

    public ModelCard Card { get; }
    public ComputePrecision Precision { get; }
    public string Engine => $"TorchSharp ({MixedPrecision.Name(Precision)})";

    public float[] Logits(byte[] pixels, int count)
    {
        var p = Card.Preprocessing;
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var x = tensor(pixels, [count, p.Channels, p.Height,
                p.Width]).to_type(ScalarType.Float32).mul_(scale).sub_(shift);
            var logits = models.Head.call((folded ?? models.Backbone).call(x));
            return logits.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            folded?.Dispose();
            models.Dispose();
            scale.Dispose();
            shift.Dispose();
        }
    }
}
