using H2T.Settings;

using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>
/// The CIFAR ResNet of He et al. as used by LDAM-DRW, MiSLAS and H2T: 16/32/64 channels, n basic blocks per stage,
/// option-A shortcuts (strided subsampling + zero channel padding, no parameters), Kaiming-normal init.
/// ResNet-32 has n = 5 (about 0.46M parameters with a 10-way linear head). Field names follow the reference's
/// PyTorch state dict: conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2}.
/// </summary>
public class ResNetCifar : Backbone
{
    readonly Conv2d conv1;
    readonly BatchNorm2d bn1;
    readonly Sequential layer1, layer2, layer3;
    readonly int depth;

    public ResNetCifar(int depth = 32, int inChannels = 3) : base($"resnet{depth}")
    {
        if ((depth - 2) % 6 != 0) throw new ArgumentException(
            $"CIFAR ResNet depth must be 6n+2 (8, 20, 32, 44, 56, 110), got {depth}");
        if (inChannels < 1) throw new ArgumentException($"inChannels must be >= 1, got {inChannels}");
        this.depth = depth;
        int n = (depth - 2) / 6;
        conv1 = Conv2d(inChannels, 16, 3, stride: 1, padding: 1, bias: false);
        bn1 = BatchNorm2d(16);
        int planes = 16;
        layer1 = MakeStage(ref planes, 16, n, 1);
        layer2 = MakeStage(ref planes, 32, n, 2);
        layer3 = MakeStage(ref planes, 64, n, 2);
        RegisterComponents();
        foreach (var (_, m) in named_modules())
            if (m is Conv2d c) init.kaiming_normal_(c.weight);
    }

    internal static Sequential MakeStage(ref int inPlanes, int planes, int blocks, int stride)
    {
        var seq = Sequential();
        for (int i = 0; i < blocks; i++)
        {
            seq.append(i.ToString(System.Globalization.CultureInfo.InvariantCulture), new BasicBlockA(inPlanes, planes,
                i == 0 ? stride : 1));
            inPlanes = planes;
        }
        return seq;
    }

    public override int FeatureChannels => 64;
    public override string Architecture => $"resnet{depth}";
    /// <inheritdoc/>
    protected internal override bool SupportsSsf => true;

    /// <summary>Blocks per stage (n of depth 6n + 2).</summary>
    public int BlocksPerStage => (depth - 2) / 6;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Output(Trunk(x)).MoveToOuterDisposeScope();
    }

    /// <summary>The plain ResNet's final map (N x 64 x H/4 x W/4); subclasses add branches after it.</summary>
    protected Tensor Trunk(Tensor x)
    {
        var y = bn1.call(Stem(c => MixedPrecision.Conv(conv1, c), x)).relu_();
        return layer3.call(layer2.call(layer1.call(y)));
    }

    /// <summary>
    /// An inference-only copy with every BatchNorm folded into the convolution before it (W' = W * g / sqrt(v + eps),
    /// b' = beta - m * g / sqrt(v + eps)): the same outputs as this network in eval mode, one pass less over every
    /// activation. Take it after the weights and statistics are final; it does not follow later changes.
    /// </summary>
    protected override Backbone? Fold()
    {
        using var _ = no_grad();
        // Intermediates die with the scope; the folded weights are detached from it and owned by the copy.
        using var scope = NewDisposeScope();
        var type = FoldedConv.TypeFor(Precision);
        var stem = FoldedConv.Of(conv1, bn1, type, stride: 1, padding: 1);
        var blocks = new[] { layer1, layer2,
            layer3 }.SelectMany(l => l.children().Cast<BasicBlockA>()).Select(b => b.Fold(type)).ToArray();
        return new FoldedResNetCifar(Architecture, stem, blocks) { Compute = Compute };
    }

    internal sealed record FoldedBlock(FoldedConv First, FoldedConv Second, bool Subsample, int Stride,
        int PadChannels);

    sealed class FoldedResNetCifar : Backbone
    {
        readonly FoldedConv stem;
        readonly FoldedBlock[] blocks;
        readonly string architecture;

        public FoldedResNetCifar(string architecture, FoldedConv stem,
            FoldedBlock[] blocks) : base(architecture + "-folded")
        {
            this.architecture = architecture;
            this.stem = stem;
            this.blocks = blocks;
        }

        public override int FeatureChannels => 64;
        public override string Architecture => architecture;

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var y = Stem(stem.Apply, x).relu_();
            foreach (var b in blocks)
            {
                var z = b.Second.Apply(b.First.Apply(y).relu_());
                var shortcut = b.Subsample
                    ? functional.pad(y[.., .., TensorIndex.Slice(null, null, b.Stride), TensorIndex.Slice(null, null,
                        b.Stride)], [0, 0, 0, 0, b.PadChannels, b.PadChannels])
                    : y;
                y = z.add_(shortcut).relu_();
            }
            return Output(y).MoveToOuterDisposeScope();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                foreach (var c in blocks.SelectMany(b => new[] { b.First, b.Second }).Prepend(stem)) c.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Basic block with the parameter-free option-A shortcut.</summary>
    internal sealed class BasicBlockA : Module<Tensor, Tensor>
    {
        public FoldedBlock Fold(ScalarType type) =>
            new(FoldedConv.Of(conv1, bn1, type, stride, padding: 1), FoldedConv.Of(conv2, bn2, type, stride: 1,
                padding: 1), subsample, stride, padChannels);

        readonly Conv2d conv1, conv2;
        readonly BatchNorm2d bn1, bn2;
        readonly int stride, padChannels;
        readonly bool subsample;

        public BasicBlockA(int inPlanes, int planes, int stride) : base("BasicBlock")
        {
            conv1 = Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
            bn2 = BatchNorm2d(planes);
            this.stride = stride;
            subsample = stride != 1 || inPlanes != planes;
            padChannels = (planes - inPlanes) / 2;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            // In place where autograd allows it (BatchNorm's backward keeps its input, ReLU's its output, an add
            // neither): two fewer activation-sized buffers per block.
            var y = bn1.call(MixedPrecision.Conv(conv1, x)).relu_();
            y = bn2.call(MixedPrecision.Conv(conv2, y));
            var shortcut = subsample
                ? functional.pad(x[.., .., TensorIndex.Slice(null, null, stride), TensorIndex.Slice(null, null,
                    stride)],
                    [0, 0, 0, 0, padChannels, padChannels])
                : x;
            return y.add_(shortcut).relu_().MoveToOuterDisposeScope();
        }
    }
}
