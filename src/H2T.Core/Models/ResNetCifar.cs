using TorchSharp;
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
public sealed class ResNetCifar : Backbone
{
    readonly Conv2d conv1;
    readonly BatchNorm2d bn1;
    readonly Sequential layer1, layer2, layer3;
    readonly int depth;

    public ResNetCifar(int depth = 32, int inChannels = 3) : base($"resnet{depth}")
    {
        if ((depth - 2) % 6 != 0) throw new ArgumentException($"CIFAR ResNet depth must be 6n+2 (8, 20, 32, 44, 56, 110), got {depth}");
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

    static Sequential MakeStage(ref int inPlanes, int planes, int blocks, int stride)
    {
        var seq = Sequential();
        for (int i = 0; i < blocks; i++)
        {
            seq.append(i.ToString(System.Globalization.CultureInfo.InvariantCulture), new BasicBlockA(inPlanes, planes, i == 0 ? stride : 1));
            inPlanes = planes;
        }
        return seq;
    }

    public override int FeatureChannels => 64;
    public override string Architecture => $"resnet{depth}";

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = functional.relu(bn1.call(conv1.call(x)));
        y = layer3.call(layer2.call(layer1.call(y)));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Basic block with the parameter-free option-A shortcut.</summary>
    sealed class BasicBlockA : Module<Tensor, Tensor>
    {
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
            var y = functional.relu(bn1.call(conv1.call(x)));
            y = bn2.call(conv2.call(y));
            var shortcut = subsample
                ? functional.pad(x[.., .., TensorIndex.Slice(null, null, stride), TensorIndex.Slice(null, null, stride)],
                    [0, 0, 0, 0, padChannels, padChannels])
                : x;
            return functional.relu(y + shortcut).MoveToOuterDisposeScope();
        }
    }
}
