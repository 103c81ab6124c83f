using H2T.Data;
using H2T.Models;
using H2T.Settings;
using static TorchSharp.torch;

namespace H2T.Training;

/// <summary>
/// LIFT's classifier start (Shi et al., ICML 2024): each class's weight vector is the unit-length mean of its
/// training images' pooled features, one pass over the training set without augmentation, before the first epoch.
/// A cosine head then starts as a nearest-class-mean classifier; a linear head gets the same vectors and zero
/// biases.
/// </summary>
internal static class ClassMeanInit
{
    public static string Apply(Backbone backbone, ClassifierHead head, DatasetSplits splits, StageOneConfig config,
        Device device)
    {
        using var loader = new BatchLoader(splits.Train, new Evaluator.SequentialSampler(splits.Train.Count),
            Math.Max(config.Optim.BatchSize, 256), splits.Norm, augment: null, seed: 0, prefetch: config.Prefetch,
            device: device);
        var features = Evaluator.PooledFeatures(backbone, loader, CancellationToken.None);
        try
        {
            using var scope = NewDisposeScope();
            int k = splits.NumClasses;
            var sums = zeros(k, head.InFeatures, device: device);
            var counts = zeros(k, device: device);
            foreach (var (x, y) in features)
            {
                sums.index_add_(0, y, x, 1);
                counts.index_add_(0, y, ones(y.shape[0], device: device), 1);
            }
            var missing = (counts == 0).nonzero().flatten().data<long>().ToArray();
            if (missing.Length > 0)
                throw new ConfigException(
                    $"head_init class-mean: class(es) " +
                        $"{string.Join(", ", missing.Select(c => splits.ClassNames[(int)c]))} " +
                    "have no training image", "head_init");
            var means = sums / counts.unsqueeze(1);
            switch (head)
            {
                case CosineHead cosine:
                    cosine.SetClassVectors(means);
                    break;
                case LinearHead linear:
                    using (no_grad())
                    {
                        linear.Fc.weight.copy_(nn.functional.normalize(means, dim: 1));
                        linear.Fc.bias?.zero_();
                    }
                    break;
                default:
                    throw new ConfigException(
                        $"head_init class-mean needs a linear or cosine classifier, not '{head.Kind}'", "head_init");
            }
            return $"head_init class-mean: the classifier starts from the unit mean features of {splits.Train.Count} " +
                $"training images ({k} classes)";
        }
        finally
        {
            foreach (var (x, y) in features)
            {
                x.Dispose();
                y.Dispose();
            }
        }
    }
}
