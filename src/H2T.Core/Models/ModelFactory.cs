namespace H2T.Models;

/// <summary>Explicit tables of backbones and heads (no registration by side effect).</summary>
public static class ModelFactory
{
    /// <summary>A backbone's constructor (by input channels and its compute) and its expert count, known without
    /// building it.</summary>
    sealed record Entry(Func<int, BackboneCompute, Backbone> Make, int Experts = 1, bool ImageNet = false,
        bool Tokens = false);

    static readonly Dictionary<string, Entry> Backbones = new(StringComparer.OrdinalIgnoreCase)
    {
        // resnet8: one block per stage, a fifth of resnet32's compute; the fast demo's backbone.
        ["resnet8"] = new((c, k) => new ResNetCifar(8, c) { Compute = k }),
        ["resnet20"] = new((c, k) => new ResNetCifar(20, c) { Compute = k }),
        ["resnet32"] = new((c, k) => new ResNetCifar(32, c) { Compute = k }),
        ["resnet44"] = new((c, k) => new ResNetCifar(44, c) { Compute = k }),
        ["resnet56"] = new((c, k) => new ResNetCifar(56, c) { Compute = k }),
        ["resnet110"] = new((c, k) => new ResNetCifar(110, c) { Compute = k }),
        // Multi-expert CIFAR ResNets: RIDE (3 experts, shared stem and first stage) and ResLT (3 BN branches).
        ["ride_resnet8"] = new((c, k) => new RideResNetCifar(8, c) { Compute = k }, 3),
        ["ride_resnet20"] = new((c, k) => new RideResNetCifar(20, c) { Compute = k }, 3),
        ["ride_resnet32"] = new((c, k) => new RideResNetCifar(32, c) { Compute = k }, 3),
        ["ride_resnet44"] = new((c, k) => new RideResNetCifar(44, c) { Compute = k }, 3),
        ["ride_resnet56"] = new((c, k) => new RideResNetCifar(56, c) { Compute = k }, 3),
        ["reslt_resnet8"] = new((c, k) => new ResLtResNetCifar(8, c) { Compute = k }, 3),
        ["reslt_resnet20"] = new((c, k) => new ResLtResNetCifar(20, c) { Compute = k }, 3),
        ["reslt_resnet32"] = new((c, k) => new ResLtResNetCifar(32, c) { Compute = k }, 3),
        ["reslt_resnet44"] = new((c, k) => new ResLtResNetCifar(44, c) { Compute = k }, 3),
        ["reslt_resnet56"] = new((c, k) => new ResLtResNetCifar(56, c) { Compute = k }, 3),
        ["resnet10"] = ImageNet("resnet10"),
        ["resnet18"] = ImageNet("resnet18"),
        ["resnet34"] = ImageNet("resnet34"),
        // CNTK's ImageNet ResNet-18 (ML.NET's DnnImageFeaturizer.ResNet18 package): 2, 2, 2, 3 blocks, "same" padding.
        ["resnet18_cntk"] = ImageNet("resnet18_cntk"),
        ["resnet50"] = ImageNet("resnet50"),
        ["resnext50"] = ImageNet("resnext50_32x4d"),
        ["resnext50_32x4d"] = ImageNet("resnext50_32x4d"),
        ["resnet152"] = ImageNet("resnet152"),
        // torchvision's ConvNeXts; convnext_micro (16/32/64/128 wide, one block per stage) is CI's random one.
        ["convnext_micro"] = ConvNeXtEntry("convnext_micro"),
        ["convnext_tiny"] = ConvNeXtEntry("convnext_tiny"),
        ["convnext_small"] = ConvNeXtEntry("convnext_small"),
        ["convnext_base"] = ConvNeXtEntry("convnext_base"),
        ["convnext_large"] = ConvNeXtEntry("convnext_large"),
    };

    static Entry ConvNeXtEntry(string arch) => new((c, k) => ConvNeXt.Build(arch, c, k));

    static ModelFactory()
    {
        // Vision Transformers (torchvision's names; timm's towers): the class token as an N x C x 1 x 1 map.
        foreach (var name in VisionTransformer.Configs.Keys)
            Backbones[name] = new((c, k) => VisionTransformer.Build(name, c, k), Tokens: true);
    }

    static Entry ImageNet(string arch) => new((c, k) => ResNetImageNet.Build(arch, c, k), ImageNet: true);

    public static IReadOnlyList<string> BackboneNames => [.. Backbones.Keys];

    /// <summary>Whether the named backbone is an ImageNet-style ResNet (7x7 stem, four stages), not a CIFAR
    /// one.</summary>
    public static bool IsImageNetResNet(string name) => Backbones.TryGetValue(name, out var e) && e.ImageNet;
    /// <summary>Classifier kinds by name ("normed" is LDAM's name for the cosine classifier); flags and YAML read this
    /// table.</summary>
    static readonly (string Name, string[] Aliases, Func<int, int, double, int, ClassifierHead> Make)[] Heads =
    [
        ("linear", ["fc", "classifier"], (c, k, _, _) => new LinearHead(c, k)),
        ("cosine", ["normed", "fcnorm", "normedlinear"], (c, k, s, _) => new CosineHead(c, k, s)),
        ("lws", [], (c, k, _, _) => new LwsHead(c, k)),
        ("ride", [], (c, k, _, e) => new RideHead(c, k, e)),
        ("reslt", [], (c, k, _, e) => new ResLtHead(c, k, e)),
    ];

    public static IReadOnlyList<string> HeadNames => [.. Heads.Select(h => h.Name)];

    /// <summary>The classifier kind a name or alias stands for (case-insensitive), or null.</summary>
    public static string? ResolveHead(string? name) =>
        name is null ? null : Heads.FirstOrDefault(h => string.Equals(h.Name, name.Trim(),
            StringComparison.OrdinalIgnoreCase)
                                                         || h.Aliases.Contains(name.Trim(),
                                                             StringComparer.OrdinalIgnoreCase)).Name;

    /// <summary>The named backbone for <paramref name="inChannels"/> input channels, built in
    /// <paramref name="compute"/> (default: fp32, channels-last).</summary>
    public static Backbone CreateBackbone(string name, int inChannels, BackboneCompute? compute = null) =>
        Find(name).Make(inChannels, compute ?? BackboneCompute.Default);

    /// <summary>Whether the named backbone is a transformer over tokens (a ViT: <see cref="ITokenTunable"/>), which
    /// the token tuning kinds need.</summary>
    public static bool HasTokens(string name) => Backbones.TryGetValue(name, out var e) && e.Tokens;

    /// <summary>How many experts (branches) the named backbone has: 3 for ride_* and reslt_*, else 1.</summary>
    public static int ExpertCount(string name) => Find(name).Experts;

    static Entry Find(string name)
    {
        if (!Backbones.TryGetValue(name, out var entry))
            throw new ArgumentException(
                $"unknown backbone '{name}'; expected one of: {string.Join(", ", Backbones.Keys)}");
        return entry;
    }

    /// <summary>The classifier <paramref name="kind"/> over the backbone's feature map (its width and expert
    /// count).</summary>
    public static ClassifierHead CreateHead(string kind, Backbone backbone, int numClasses, double cosineScale = 1.0)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        var k = kind.ToLowerInvariant();
        // linear (the default) and cosine (RIDE configs' use_norm) mean "the backbone's own" for a multi-expert
        // backbone.
        if (backbone.ExpertHeadKind is { } own && k is "linear" or "cosine") k = own;
        bool expertKind = k is "ride" or "reslt";
        if (backbone.Experts > 1 && !expertKind)
            throw new ArgumentException(
                $"backbone {backbone.Architecture} has {backbone.Experts} experts: it needs the " +
                $"'{backbone.ExpertHeadKind}' classifier, not '{kind}'");
        if (expertKind && backbone.ExpertHeadKind != k)
            throw new ArgumentException($"the '{kind}' classifier needs a {k}_* backbone, not {backbone.Architecture}");
        return CreateHead(k, backbone.FeatureChannels, numClasses, cosineScale, backbone.Experts);
    }

    public static ClassifierHead CreateHead(string kind, int inFeatures, int numClasses, double cosineScale = 1.0,
        int experts = 1)
    {
        ArgumentNullException.ThrowIfNull(kind);
        var name = ResolveHead(kind);
        var entry = Heads.FirstOrDefault(h => h.Name == name);
        return entry.Make is { } make ? make(inFeatures, numClasses, cosineScale, experts)
            : throw new ArgumentException(
                $"unknown classifier '{kind}'; expected one of: {string.Join(", ", HeadNames)}");
    }
}
