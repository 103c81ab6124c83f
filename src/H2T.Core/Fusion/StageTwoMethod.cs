using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Fusion;

/// <summary>What the classifier of a stage-II member trains on for one paired batch: features, the tail labels, and
/// optionally second labels with their weight (a mixed target, as mixup's loss takes it).</summary>
public sealed record AugmentedBatch(Tensor Features, Tensor? OtherLabels = null, double OtherWeight = 0);

/// <summary>
/// One stage-II method, the seam of the stage-II engine (Training.StageTwoEngine). A member has two: its feature
/// augmentation (<c>fusion</c>: H2T, feature mixup, none) and its classifier variant (<c>classifier</c>: keep, lws).
/// Each hook has the do-nothing default, so a method writes only what it changes.
/// </summary>
public interface IStageTwoMethod
{
    /// <summary>Whether the member needs the instance-sampled head-side batch (and its feature map).</summary>
    bool UsesHeadSide => false;

    /// <summary>Whether <see cref="Augment"/> acts on each channel alone and linearly in its spatial values, so that
    /// global average pooling commutes with it and the pooled feature cache (feature_cache: pooled) gives the head what
    /// the maps would. A method that leaves the features as they are does; one that augments must say so.</summary>
    bool CommutesWithPooling => !UsesHeadSide;

    /// <summary>The classifier the member trains, made from the stage-I one (<paramref name="checkpoint"/> names the
    /// file
    /// for errors); a method that replaces it disposes the one it was given.</summary>
    ClassifierHead AdaptHead(ClassifierHead stageOne, string checkpoint) => stageOne;

    /// <summary>The batch the classifier trains on, from the frozen backbone's tail-side map (and the head side's when
    /// <see cref="UsesHeadSide"/>). Draws come from <paramref name="rng"/>, seeded per epoch from the run's seed.
    /// Returned tensors are fresh or aliases; the caller disposes them.</summary>
    AugmentedBatch Augment(Tensor tailMap, Tensor? headMap, Tensor tailLabels, Tensor? headLabels, Random rng,
        int experts) =>
        new(tailMap.alias());
}

/// <summary>
/// The one table of stage-II methods: each name (the <c>fusion</c> and <c>classifier</c> keys and flags read it), its
/// options, their check and the factory. A new method is a class and one line here.
/// </summary>
public static class StageTwoMethods
{
    public const string H2T = "h2t";

    /// <summary>Which of a member's two slots a method fills.</summary>
    public enum Slot { Fusion, Classifier }

    sealed record Entry(string Name, Slot Slot, string Paper, IReadOnlyList<MethodOption> Options, Func<StageTwoConfig,
        IStageTwoMethod> Create);

    static readonly Entry[] Entries =
    [
        new(H2T, Slot.Fusion,
            "H2T (Li et al., AAAI 2024): floor(rho * C) channels of the tail map grafted from the head map", [],
            c => c.Rho == 0 ? Unchanged.Instance : new HeadToTailFusion(c.Rho)),
        new("feature-mixup", Slot.Fusion, FeatureMixup.Paper, FeatureMixup.Options,
            c => FeatureMixup.From(c.MethodOptions)),
        new("none", Slot.Fusion, "no feature augmentation (plain class-balanced re-training)", [],
            _ => Unchanged.Instance),
        new("keep", Slot.Classifier, "the stage-I classifier, fine-tuned (or re-initialised with reinit_classifier)",
            [], _ => Unchanged.Instance),
        new("lws", Slot.Classifier,
            "Decouple's learnable weight scaling (Kang et al., ICLR 2020): the stage-I linear weights frozen, one " +
            "scale per class learnt", [],
            _ => WeightScaling.Instance),
    ];

    /// <summary>The names a slot accepts, in table order.</summary>
    public static IReadOnlyList<string> Names(Slot slot) => [.. Entries.Where(e => e.Slot == slot).Select(e => e.Name)];

    /// <summary>Every method option key (the binder accepts them as config keys and overrides).</summary>
    public static IReadOnlyList<string> OptionKeys { get; } = [.. Entries.SelectMany(e => e.Options).Select(o =>
        o.Key)];

    /// <summary>A line per method, for docs and help.</summary>
    public static IEnumerable<string> Describe() => Entries.Select(e =>
        $"{(e.Slot == Slot.Fusion ? "fusion" : "classifier")} {e.Name}: {e.Paper}" + (e.Options.Count == 0 ? "" :
            $" (options: {string.Join(", ", e.Options.Select(o => $"{o.Key}: {o.Meaning}"))})"));

    /// <summary>The member's feature augmentation.</summary>
    public static IStageTwoMethod Fusion(StageTwoConfig config) => Find(Slot.Fusion, config.Fusion,
        "fusion").Create(config);

    /// <summary>The member's classifier variant.</summary>
    public static IStageTwoMethod Classifier(StageTwoConfig config) => Find(Slot.Classifier, config.Classifier,
        "classifier").Create(config);

    /// <summary>The names against the table, the options against the methods chosen, each method's option
    /// values.</summary>
    public static void Check(StageTwoConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var fusion = Find(Slot.Fusion, config.Fusion, "fusion");
        var classifier = Find(Slot.Classifier, config.Classifier, "classifier");
        MethodOptions.CheckKnown(config.MethodOptions,
            fusion.Options.Concat(classifier.Options).Select(o => o.Key).ToHashSet(StringComparer.Ordinal),
            $"fusion '{config.Fusion}' and classifier '{config.Classifier}'");
        var method = fusion.Create(config);
        classifier.Create(config);
        if (config.FeatureCache == FeatureCacheMode.Pooled && !method.CommutesWithPooling)
            throw new ConfigException(
                $"fusion '{config.Fusion}' acts on the spatial map, so pooled features cannot stand in for it; " +
                                      "use feature_cache: maps or off", "feature_cache");
    }

    static Entry Find(Slot slot, string name, string key) =>
        Entries.FirstOrDefault(e => e.Slot == slot && string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ConfigException($"unknown {key} '{name}'; expected one of: {string.Join(", ", Names(slot))}", key);

    /// <summary>The default of both slots: the tail map and the stage-I classifier as they are.</summary>
    sealed class Unchanged : IStageTwoMethod
    {
        public static readonly Unchanged Instance = new();
    }

    sealed class WeightScaling : IStageTwoMethod
    {
        public static readonly WeightScaling Instance = new();

        public ClassifierHead AdaptHead(ClassifierHead stageOne, string checkpoint)
        {
            ArgumentNullException.ThrowIfNull(stageOne);
            if (stageOne is not LinearHead linear) throw new ConfigException(
                $"{checkpoint}: lws needs a stage-I linear classifier, this one is '{stageOne.Kind}'");
            var lws = new LwsHead(linear.InFeatures, linear.NumClasses);
            lws.LoadFrom(linear);
            stageOne.Dispose();
            return lws;
        }
    }
}
