using H2T.Runs;
using H2T.Data;
using H2T.Settings;
using H2T.Training;

namespace H2T.Bench;

/// <summary>
/// The trainers' own epoch code (StageOneTrainer: loader + mixup + step; StageTwoTrainer with H2T: paired loaders, two
/// frozen forwards, fusion, classifier step), one whole epoch each on Fashion-MNIST-LT with ResNet-32, without and with
/// background prefetch: the gap to the isolated step (ModelBench) is the loop's overhead.
/// </summary>
public static class LoopBench
{
    public static IEnumerable<object> Run()
    {
        var splits = DatasetCatalog.Load(new DataConfig("fashion-mnist"));
        var dir = Path.Combine(Path.GetTempPath(), "h2t-loop-bench");
        foreach (var prefetch in new[] { 0, 2 })
        {
            var (s1, s2) = Epochs(splits, Path.Combine(dir, $"prefetch{prefetch}"), prefetch);
            Console.WriteLine(
                $"loop fashion-mnist-LT prefetch {prefetch}: stage I {s1:F0} img/s, stage II (H2T) {s2:F0} img/s");
            yield return new { name = $"loop-stage1-fmnist-prefetch{prefetch}", images_per_second = s1 };
            yield return new { name = $"loop-stage2-fmnist-prefetch{prefetch}", images_per_second = s2 };
        }
    }

    /// <summary>One epoch of each real trainer (no evaluation), as images per second from its own metrics.</summary>
    public static (double StageOne, double StageTwo) Epochs(DatasetSplits splits, string dir, int prefetch = 2)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var run1 = new RunFolder(Path.Combine(dir, "s1"));
        var m1 = StageOneTrainer.Run(new StageOneConfig { Data = new DataConfig(splits.Name), Backbone = "resnet32",
            Epochs = 1, EvalEvery = 0, Prefetch = prefetch },
            splits, run1, TorchSharp.torch.CPU, new SilentObserver());
        var m2 = StageTwoTrainer.Run(run1.LastCheckpoint, new StageTwoConfig { Epochs = 1, EvalEvery = 0, Rho = 0.25,
            Prefetch = prefetch },
            splits, new RunFolder(Path.Combine(dir, "s2")), TorchSharp.torch.CPU, new SilentObserver());
        return (m1.Epochs[^1].ImagesPerSecond, m2.Epochs[^1].ImagesPerSecond);
    }
}
