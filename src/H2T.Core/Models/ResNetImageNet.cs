using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>
/// ImageNet-style ResNet / ResNeXt for 224-pixel sets (ImageNet-LT, iNaturalist 2018, Places-LT), returning the
/// stage-4 feature map. State-dict names match torchvision's (conv1, bn1, layer1..4, downsample.0/.1) so torchvision
/// weights load by name; the classifier lives in a separate head.
/// <para><c>resnet18_cntk</c> is the ImageNet ResNet-18 that CNTK 2.6 exported (ML.NET's DnnImageFeaturizer package):
/// basic blocks 2, 2, 2, 3, an extra <c>layer4.2</c>. Its file pads strided windows p before and p - 1 after, fixed
/// for its 224-px input; at even sizes that gives the numbers symmetric padding gives, and CNTK's "same" rule at odd
/// sizes is symmetric padding, so it pads as torchvision does (tested against ONNX Runtime at 224 and 112 px).</para>
/// </summary>
public sealed class ResNetImageNet : Backbone
{
    readonly Conv2d conv1;
    readonly BatchNorm2d bn1;
    readonly MaxPool2d maxpool;
    readonly Sequential layer1, layer2, layer3, layer4;
    readonly string arch;
    readonly int featureChannels;

    ResNetImageNet(string arch, bool bottleneck, int[] blocks, int groups, int widthPerGroup,
        int inChannels) : base(arch)
    {
        this.arch = arch;
        conv1 = Conv2d(inChannels, 64, 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(64);
        maxpool = MaxPool2d(3, stride: 2, padding: 1);
        int inPlanes = 64;
        int expansion = bottleneck ? 4 : 1;
        Sequential Stage(int planes, int count, int stride)
        {
            var seq = Sequential();
            for (int i = 0; i < count; i++)
            {
                int s = i == 0 ? stride : 1;
                Module<Tensor, Tensor> block = bottleneck
                    ? new Bottleneck(inPlanes, planes, s, groups, widthPerGroup)
                    : new Basic(inPlanes, planes, s);
                seq.append(i.ToString(System.Globalization.CultureInfo.InvariantCulture), block);
                inPlanes = planes * expansion;
            }
            return seq;
        }
        layer1 = Stage(64, blocks[0], 1);
        layer2 = Stage(128, blocks[1], 2);
        layer3 = Stage(256, blocks[2], 2);
        layer4 = Stage(512, blocks[3], 2);
        featureChannels = 512 * expansion;
        RegisterComponents();
        foreach (var (_, m) in named_modules())
        {
            if (m is Conv2d c) init.kaiming_normal_(c.weight, mode: init.FanInOut.FanOut,
                nonlinearity: init.NonlinearityType.ReLU);
            else if (m is BatchNorm2d b) { init.ones_(b.weight); init.zeros_(b.bias); }
        }
    }

    /// <summary>The named ImageNet ResNet (torchvision's layouts; resnet18_cntk has CNTK's 2, 2, 2, 3 blocks) for
    /// <paramref name="inChannels"/> input channels, built in <paramref name="compute"/>.</summary>
    public static ResNetImageNet Build(string arch, int inChannels, BackboneCompute compute) => arch switch
    {
        "resnet10" => new(arch, false, [1, 1, 1, 1], 1, 64, inChannels) { Compute = compute },
        "resnet18" => new(arch, false, [2, 2, 2, 2], 1, 64, inChannels) { Compute = compute },
        "resnet34" => new(arch, false, [3, 4, 6, 3], 1, 64, inChannels) { Compute = compute },
        "resnet18_cntk" => new(arch, false, [2, 2, 2, 3], 1, 64, inChannels) { Compute = compute },
        "resnet50" => new(arch, true, [3, 4, 6, 3], 1, 64, inChannels) { Compute = compute },
        "resnext50_32x4d" => new(arch, true, [3, 4, 6, 3], 32, 4, inChannels) { Compute = compute },
        "resnet152" => new(arch, true, [3, 8, 36, 3], 1, 64, inChannels) { Compute = compute },
        _ => throw new ArgumentException($"unknown ImageNet ResNet '{arch}'", nameof(arch)),
    };

    public override int FeatureChannels => featureChannels;
    public override string Architecture => arch;
    /// <inheritdoc/>
    protected internal override bool SupportsSsf => true;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = maxpool.call(bn1.call(Stem(c => MixedPrecision.Conv(conv1, c), x)).relu_());
        y = layer4.call(layer3.call(layer2.call(layer1.call(y))));
        return Output(y).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// An inference-only copy with every BatchNorm (the downsample's too) folded into the convolution before it: the
    /// same outputs as this network in eval mode, one pass less over every activation (evaluation and predict use it).
    /// Take it after the weights and statistics are final; it does not follow later changes.
    /// </summary>
    protected override Backbone? Fold()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var type = FoldedConv.TypeFor(Precision);
        var stem = FoldedConv.Of(conv1, bn1, type, stride: 2, padding: 3);
        var blocks = new[] { layer1, layer2, layer3, layer4 }.SelectMany(l => l.children())
            .Select(b => b is Bottleneck n ? n.Fold(type) : ((Basic)b).Fold(type)).ToArray();
        return new FoldedResNetImageNet(arch, featureChannels, stem, blocks) { Compute = Compute };
    }

    /// <summary>A residual block, folded: its convolutions in order (ReLU after all but the last) and its
    /// shortcut.</summary>
    sealed record FoldedBlock(FoldedConv[] Convs, FoldedConv? Downsample);

    sealed class FoldedResNetImageNet(string architecture, int featureChannels, FoldedConv stem,
        FoldedBlock[] blocks) : Backbone(architecture + "-folded")
    {
        public override int FeatureChannels => featureChannels;
        public override string Architecture => architecture;

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var y = functional.max_pool2d(Stem(stem.Apply, x).relu_(), kernel_size: 3, stride: 2, padding: 1);
            foreach (var b in blocks)
            {
                var z = y;
                for (int i = 0; i < b.Convs.Length; i++)
                {
                    z = b.Convs[i].Apply(z);
                    if (i < b.Convs.Length - 1) z = z.relu_();
                }
                y = z.add_(b.Downsample is { } d ? d.Apply(y) : y).relu_();
            }
            return Output(y).MoveToOuterDisposeScope();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                foreach (var c in blocks.SelectMany(b => b.Downsample is { } d ? [.. b.Convs,
                    d] : b.Convs).Prepend(stem)) c.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>
    /// torchvision's downsample (1x1 conv, BatchNorm) registered as a Sequential for its state-dict names
    /// (downsample.0 / .1), with its two layers kept typed: the forward calls them itself, in the input's precision.
    /// </summary>
    sealed record DownsamplePath(Sequential Module, Conv2d Conv, BatchNorm2d Norm)
    {
        public static DownsamplePath? For(int inPlanes, int outPlanes, int stride)
        {
            if (stride == 1 && inPlanes == outPlanes) return null;
            var conv = Conv2d(inPlanes, outPlanes, 1, stride: stride, bias: false);
            var norm = BatchNorm2d(outPlanes);
            return new(Sequential(("0", conv), ("1", norm)), conv, norm);
        }

        public static Tensor Shortcut(DownsamplePath? path,
            Tensor x) => path is null ? x : path.Norm.call(MixedPrecision.Conv(path.Conv, x));

        public FoldedConv Fold(ScalarType type, int stride) => FoldedConv.Of(Conv, Norm, type, stride, padding: 0);
    }

    sealed class Basic : Module<Tensor, Tensor>
    {
        readonly Conv2d conv1, conv2;
        readonly BatchNorm2d bn1, bn2;
        readonly Sequential? downsample;
        readonly DownsamplePath? shortcut;
        readonly int stride;

        public Basic(int inPlanes, int planes, int stride) : base("BasicBlock")
        {
            this.stride = stride;
            conv1 = Conv2d(inPlanes, planes, 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(planes);
            conv2 = Conv2d(planes, planes, 3, padding: 1, bias: false);
            bn2 = BatchNorm2d(planes);
            shortcut = DownsamplePath.For(inPlanes, planes, stride);
            downsample = shortcut?.Module;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var y = bn2.call(MixedPrecision.Conv(conv2, bn1.call(MixedPrecision.Conv(conv1, x)).relu_()));
            var identity = DownsamplePath.Shortcut(shortcut, x);
            return y.add_(identity).relu_().MoveToOuterDisposeScope();
        }

        public FoldedBlock Fold(ScalarType type) =>
            new([FoldedConv.Of(conv1, bn1, type, stride, padding: 1), FoldedConv.Of(conv2, bn2, type, stride: 1,
                padding: 1)], shortcut?.Fold(type, stride));
    }

    sealed class Bottleneck : Module<Tensor, Tensor>
    {
        readonly Conv2d conv1, conv2, conv3;
        readonly BatchNorm2d bn1, bn2, bn3;
        readonly Sequential? downsample;
        readonly DownsamplePath? shortcut;
        readonly int stride, groups;

        public Bottleneck(int inPlanes, int planes, int stride, int groups, int widthPerGroup) : base("Bottleneck")
        {
            this.stride = stride;
            this.groups = groups;
            int width = planes * widthPerGroup / 64 * groups;
            conv1 = Conv2d(inPlanes, width, 1, bias: false);
            bn1 = BatchNorm2d(width);
            conv2 = Conv2d(width, width, 3, stride: stride, padding: 1, groups: groups, bias: false);
            bn2 = BatchNorm2d(width);
            conv3 = Conv2d(width, planes * 4, 1, bias: false);
            bn3 = BatchNorm2d(planes * 4);
            shortcut = DownsamplePath.For(inPlanes, planes * 4, stride);
            downsample = shortcut?.Module;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var y = bn1.call(MixedPrecision.Conv(conv1, x)).relu_();
            y = bn2.call(MixedPrecision.Conv(conv2, y)).relu_();
            y = bn3.call(MixedPrecision.Conv(conv3, y));
            var identity = DownsamplePath.Shortcut(shortcut, x);
            return y.add_(identity).relu_().MoveToOuterDisposeScope();
        }

        public FoldedBlock Fold(ScalarType type) => new([FoldedConv.Of(conv1, bn1, type, stride: 1, padding: 0),
            FoldedConv.Of(conv2, bn2, type, stride, padding: 1, groups), FoldedConv.Of(conv3, bn3, type, stride: 1,
                padding: 0)], shortcut?.Fold(type, stride));
    }
}
