using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace H2T.Models;

/// <summary>
/// RIDE's CIFAR ResNet (Wang et al., ICLR 2021): the stem and the first stage are shared, the second and third
/// stages are one copy per expert, at RIDE's reduced widths (24 and 48 channels, so three experts cost about one
/// plain ResNet). The feature map is the experts' maps concatenated on the channel axis (N x E*48 x H x W): H2T and
/// the expert head split it back, so each expert keeps its own map. State-dict names follow RIDE's model: conv1, bn1,
/// layer1, layer2s.{e}, layer3s.{e}.
/// </summary>
public sealed class RideResNetCifar : Backbone
{
    public const int DefaultExperts = 3;
    const int Layer2Width = 24, Layer3Width = 48;

    readonly Conv2d conv1;
    readonly BatchNorm2d bn1;
    readonly Sequential layer1;
    readonly ModuleList<Sequential> layer2s, layer3s;
    readonly int depth, experts;

    public RideResNetCifar(int depth = 32, int inChannels = 3,
        int experts = DefaultExperts) : base($"ride_resnet{depth}")
    {
        if ((depth - 2) % 6 != 0) throw new ArgumentException(
            $"CIFAR ResNet depth must be 6n+2 (8, 20, 32, 44, 56, 110), got {depth}");
        if (inChannels < 1) throw new ArgumentException($"inChannels must be >= 1, got {inChannels}");
        if (experts < 2) throw new ArgumentException($"a RIDE backbone needs at least 2 experts, got {experts}");
        this.depth = depth;
        this.experts = experts;
        int n = (depth - 2) / 6;
        conv1 = Conv2d(inChannels, 16, 3, stride: 1, padding: 1, bias: false);
        bn1 = BatchNorm2d(16);
        int planes = 16;
        layer1 = ResNetCifar.MakeStage(ref planes, 16, n, 1);
        layer2s = new ModuleList<Sequential>();
        layer3s = new ModuleList<Sequential>();
        for (int e = 0; e < experts; e++)
        {
            int p = planes;
            layer2s.Add(ResNetCifar.MakeStage(ref p, Layer2Width, n, 2));
            layer3s.Add(ResNetCifar.MakeStage(ref p, Layer3Width, n, 2));
        }
        RegisterComponents();
        foreach (var (_, m) in named_modules())
            if (m is Conv2d c) init.kaiming_normal_(c.weight);
    }

    public override int FeatureChannels => experts * Layer3Width;
    public override string Architecture => $"ride_resnet{depth}";
    public override int Experts => experts;
    public override string? ExpertHeadKind => "ride";

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var shared = layer1.call(bn1.call(Stem(c => MixedPrecision.Conv(conv1, c), x)).relu_());
        var maps = new Tensor[experts];
        for (int e = 0; e < experts; e++) maps[e] = layer3s[e].call(layer2s[e].call(shared));
        return Output(cat(maps, 1)).MoveToOuterDisposeScope();
    }

}

/// <summary>
/// ResLT's CIFAR ResNet (Cui et al., TPAMI 2022): the plain ResNet trunk, then three BatchNorm branches (head, medium,
/// tail: BNH, BNM, BNT) over its final map. The feature map is the three branch maps concatenated on the channel
/// axis (N x 3*64 x H x W); the ResLT head classifies each with one shared linear layer and sums the logits.
/// </summary>
public sealed class ResLtResNetCifar : ResNetCifar
{
    readonly BatchNorm2d bnh, bnm, bnt;
    readonly int depth;

    public ResLtResNetCifar(int depth = 32, int inChannels = 3) : base(depth, inChannels)
    {
        this.depth = depth;
        bnh = BatchNorm2d(64);
        bnm = BatchNorm2d(64);
        bnt = BatchNorm2d(64);
        // The base constructor already registered its own fields; these come after it.
        register_module("BNH", bnh);
        register_module("BNM", bnm);
        register_module("BNT", bnt);
    }

    public override int FeatureChannels => 3 * 64;
    public override string Architecture => $"reslt_resnet{depth}";
    public override int Experts => 3;
    public override string? ExpertHeadKind => "reslt";

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = Trunk(x);
        return Output(cat([bnh.call(y), bnm.call(y), bnt.call(y)], 1)).MoveToOuterDisposeScope();
    }

    /// <summary>The branches need their BatchNorms; the trunk-only fold does not apply.</summary>
    protected override Backbone? Fold() => null;

}
