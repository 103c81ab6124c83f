using H2T.Runs;
using H2T.Data;
using H2T.Models;
using H2T.Tests.Data;
using H2T.Training;
using static TorchSharp.torch;

namespace H2T.Tests.Inference;

/// <summary>Checkpoints of every architecture, written by the real save code, with BatchNorm statistics and affine
/// parameters set away from their initial values (so folding them is tested), and real CIFAR-10 test images.</summary>
internal static class InferenceFixtures
{
    public static readonly string[] CifarClasses = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
        "horse", "ship", "truck"];

    public static ImagePreprocessing Cifar32 { get; } = new(3, 32, 32, 0, [0.4914f, 0.4822f, 0.4465f], [0.2023f,
        0.1994f, 0.2010f]);

    /// <summary>Saves a checkpoint of <paramref name="architecture"/> with classifier <paramref name="head"/>
    /// ("taunorm":
    /// a linear head tau-normalised with tau 1; "lws": scales away from 1).</summary>
    public static string Checkpoint(string dir, string architecture, string head, int seed,
        ImagePreprocessing? pre = null, int classes = 10)
    {
        pre ??= Cifar32;
        manual_seed(seed);
        using var backbone = ModelFactory.CreateBackbone(architecture, pre.Channels);
        string kind = head is "taunorm" ? "linear" : head;
        var made = kind is "lws" or "cosine" ? ModelFactory.CreateHead(kind, backbone.FeatureChannels,
            classes) : ModelFactory.CreateHead(kind, backbone, classes);
        using var _ = no_grad();
        var gen = new Random(seed);
        foreach (var (name, m) in backbone.named_modules())
            if (m is TorchSharp.Modules.BatchNorm2d bn)
            {
                long n = bn.running_mean!.shape[0];
                bn.running_mean.copy_(randn(n) * 0.1);
                bn.running_var!.copy_(rand(n) * 0.5 + 0.75);
                bn.weight!.copy_(rand(n) * 0.4 + 0.8);
                bn.bias!.copy_(randn(n) * 0.05);
            }
            else if (m is TorchSharp.Modules.LayerNorm ln)
            {
                // ConvNeXt's norms and layer scales drawn too: at torchvision's 1e-6 a block is nearly the identity.
                long n = ln.weight!.shape[0];
                ln.weight.copy_(rand(n) + 0.5);
                ln.bias!.copy_(randn(n) * 0.1);
            }
        foreach (var (name, p) in backbone.named_parameters())
            if (name.EndsWith("layer_scale", StringComparison.Ordinal) ||
                name.EndsWith(".gamma", StringComparison.Ordinal)) p.copy_(rand(p.shape) * 0.45 + 0.05);
            else if (backbone is VisionTransformer && IsVitNorm(name))
                p.copy_(name.EndsWith(".weight", StringComparison.Ordinal) ? rand(p.shape) + 0.5
                    : randn(p.shape) * 0.1);
            else if (name is "class_token" or "reg_token") p.copy_(randn(p.shape)); // zero or 1e-6 when built
        ClassifierHead final = made;
        if (made is LwsHead lws)
            foreach (var (name, p) in lws.named_parameters())
                if (name == "scales") p.copy_(rand(classes) + 0.5);
        if (head == "taunorm") final = TauNormalization.Apply((LinearHead)made, 1.0);
        var meta = new CheckpointMeta
        {
            Stage = "stage2", Architecture = backbone.Architecture, InChannels = pre.Channels, NumClasses = classes,
                Classifier = final.Kind,
            ClassCounts = [.. Enumerable.Repeat(10, classes)], Dataset = "cifar10-jpg",
                ClassNames = classes == 10 ? CifarClasses : [.. Enumerable.Range(0, classes).Select(c => $"c{c}")],
            Preprocessing = pre,
        };
        var path = Path.Combine(dir, $"{architecture}-{head}.ckpt");
        H2T.Runs.Checkpoint.Save(path, meta, backbone, final, null);
        if (!ReferenceEquals(final, made)) made.Dispose();
        final.Dispose();
        return path;
    }

    // A ViT's LayerNorms (H2T.Models.Norm, not TorchSharp's LayerNorm): ones and zeros when built, so drawn too.
    static bool IsVitNorm(string name) =>
        name.Split('.') is [.., var module, "weight" or "bias"] && module is "ln" or "ln_pre" or "ln_1" or "ln_2";

    /// <summary>The committed CIFAR-10 test images (100: 10 per class), in class then file order.</summary>
    public static string[] TestImages() =>
        [.. CifarClasses.SelectMany(c => Directory.GetFiles(Path.Combine(DataTestFiles.CifarJpgSample, "test",
            c)).Order(StringComparer.Ordinal))];
}
