namespace H2T.Models;

/// <summary>Explicit tables of backbones and heads (no registration by side effect).</summary>
public static class ModelFactory
{
    static readonly Dictionary<string, Func<int, Backbone>> Backbones = new(StringComparer.OrdinalIgnoreCase)
    {
        // resnet8: one block per stage, a fifth of resnet32's compute; the fast demo's backbone.
        ["resnet8"] = c => new ResNetCifar(8, c),
        ["resnet20"] = c => new ResNetCifar(20, c),
        ["resnet32"] = c => new ResNetCifar(32, c),
        ["resnet44"] = c => new ResNetCifar(44, c),
        ["resnet56"] = c => new ResNetCifar(56, c),
        ["resnet110"] = c => new ResNetCifar(110, c),
        // Multi-expert CIFAR ResNets: RIDE (3 experts, shared stem and first stage) and ResLT (3 BN branches).
        ["ride_resnet8"] = c => new RideResNetCifar(8, c),
        ["ride_resnet20"] = c => new RideResNetCifar(20, c),
        ["ride_resnet32"] = c => new RideResNetCifar(32, c),
        ["ride_resnet44"] = c => new RideResNetCifar(44, c),
        ["ride_resnet56"] = c => new RideResNetCifar(56, c),
        ["reslt_resnet8"] = c => new ResLtResNetCifar(8, c),
        ["reslt_resnet20"] = c => new ResLtResNetCifar(20, c),
        ["reslt_resnet32"] = c => new ResLtResNetCifar(32, c),
        ["reslt_resnet44"] = c => new ResLtResNetCifar(44, c),
        ["reslt_resnet56"] = c => new ResLtResNetCifar(56, c),
        ["resnet10"] = ResNetImageNet.ResNet10,
        ["resnet50"] = ResNetImageNet.ResNet50,
        ["resnext50"] = ResNetImageNet.ResNeXt50,
        ["resnext50_32x4d"] = ResNetImageNet.ResNeXt50,
        ["resnet152"] = ResNetImageNet.ResNet152,
    };

    public static IReadOnlyList<string> BackboneNames => [.. Backbones.Keys];
    public static IReadOnlyList<string> HeadNames => ["linear", "cosine", "lws", "ride", "reslt"];

    public static Backbone CreateBackbone(string name, int inChannels)
    {
        if (!Backbones.TryGetValue(name, out var make))
            throw new ArgumentException($"unknown backbone '{name}'; expected one of: {string.Join(", ", Backbones.Keys)}");
        return make(inChannels);
    }

    /// <summary>The classifier <paramref name="kind"/> over the backbone's feature map (its width and expert count).</summary>
    public static ClassifierHead CreateHead(string kind, Backbone backbone, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        var k = kind.ToLowerInvariant();
        // linear (the default) and cosine (RIDE configs' use_norm) mean "the backbone's own" for a multi-expert backbone.
        if (backbone.ExpertHeadKind is { } own && k is "linear" or "cosine") k = own;
        bool expertKind = k is "ride" or "reslt";
        if (backbone.Experts > 1 && !expertKind)
            throw new ArgumentException($"backbone {backbone.Architecture} has {backbone.Experts} experts: it needs the '{backbone.ExpertHeadKind}' classifier, not '{kind}'");
        if (expertKind && backbone.ExpertHeadKind != k)
            throw new ArgumentException($"the '{kind}' classifier needs a {k}_* backbone, not {backbone.Architecture}");
        return CreateHead(k, backbone.FeatureChannels, numClasses, experts: backbone.Experts);
    }

    public static ClassifierHead CreateHead(string kind, int inFeatures, int numClasses, double cosineScale = 1.0, int experts = 1) => kind.ToLowerInvariant() switch
    {
        "linear" => new LinearHead(inFeatures, numClasses),
        "cosine" or "normed" => new CosineHead(inFeatures, numClasses, cosineScale),
        "lws" => new LwsHead(inFeatures, numClasses),
        "ride" => new RideHead(inFeatures, numClasses, experts),
        "reslt" => new ResLtHead(inFeatures, numClasses, experts),
        _ => throw new ArgumentException($"unknown classifier '{kind}'; expected one of: {string.Join(", ", HeadNames)}"),
    };
}
