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
        ["resnet10"] = ResNetImageNet.ResNet10,
        ["resnet50"] = ResNetImageNet.ResNet50,
        ["resnext50"] = ResNetImageNet.ResNeXt50,
        ["resnext50_32x4d"] = ResNetImageNet.ResNeXt50,
        ["resnet152"] = ResNetImageNet.ResNet152,
    };

    public static IReadOnlyList<string> BackboneNames => [.. Backbones.Keys];
    public static IReadOnlyList<string> HeadNames => ["linear", "cosine", "lws"];

    public static Backbone CreateBackbone(string name, int inChannels)
    {
        if (!Backbones.TryGetValue(name, out var make))
            throw new ArgumentException($"unknown backbone '{name}'; expected one of: {string.Join(", ", Backbones.Keys)}");
        return make(inChannels);
    }

    public static ClassifierHead CreateHead(string kind, int inFeatures, int numClasses, double cosineScale = 1.0) => kind.ToLowerInvariant() switch
    {
        "linear" => new LinearHead(inFeatures, numClasses),
        "cosine" or "normed" => new CosineHead(inFeatures, numClasses, cosineScale),
        "lws" => new LwsHead(inFeatures, numClasses),
        _ => throw new ArgumentException($"unknown classifier '{kind}'; expected one of: {string.Join(", ", HeadNames)}"),
    };
}
