// H2T.NET as a library, the way an application uses it:
//   dotnet run --project examples/QuickStart -- [IMAGE_ROOT] [OUT]
// IMAGE_ROOT holds train/<class>/*.jpg and test/<class>/*.jpg (default: the CIFAR-10 sample committed with the tests).
using H2T.Runs;
using H2T.Onnx;
using H2T.Inference;
using H2T.Runtime;
using H2T.Settings;
using H2T.Training;

var repo = FindRepo(AppContext.BaseDirectory);
var images = args.Length > 0 ? args[0] : Path.Combine(repo, "tests", "H2T.Tests", "Data", "Fixtures",
    "cifar10-jpg-sample");
var outDir = Path.GetFullPath(args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(),
    $"h2t-quickstart-{Environment.ProcessId}"));

TorchRuntime.Initialize();
var device = TorchRuntime.ResolveDevice("cpu");
var data = new DataConfig(Dataset: "cifar10-jpg", DataPath: images, ImbFactor: 2);

// Stage I: backbone + classifier on the long-tailed set (the typed records the CLI and YAML configs bind).
var stageOne = new StageOneConfig { Data = data, Backbone = "resnet8", Epochs = 2, Optim = new OptimConfig(Lr: 0.05,
    BatchSize: 50) };
var s1 = new RunFolder(Path.Combine(outDir, "stage1"));
var m1 = StageOneTrainer.Run(stageOne, s1, device, new SilentObserver());
Console.WriteLine($"stage I: top-1 {m1.Final?.Top1:F1}% -> {s1.LastCheckpoint}");

// Stage II: frozen backbone, classifier re-trained with H2T fusion (rho = 0.5).
var stageTwo = new StageTwoConfig { Epochs = 1, Rho = 0.5, Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4,
    BatchSize: 50) };
var s2 = new RunFolder(Path.Combine(outDir, "stage2"));
var m2 = StageTwoTrainer.Run(s1.LastCheckpoint, stageTwo, s2, device, new SilentObserver());
Console.WriteLine($"stage II (H2T, rho 0.5): top-1 {m2.Final?.Top1:F1}% -> {s2.LastCheckpoint}");

// Predict with the checkpoint (TorchSharp), export to ONNX, predict with ONNX Runtime.
var cat = Directory.GetFiles(Path.Combine(images, "test", "cat")).Order(StringComparer.Ordinal).First();
using (var model = ImageClassifier.Load(s2.LastCheckpoint))
{
    var p = model.Predict(cat, topK: 3);
    Console.WriteLine(
        $"{Path.GetFileName(cat)}: {string.Join(", ", p.Top.Select(t => $"{t.Name} {t.Probability:P1}"))} " +
        $"({model.Engine})");
}
var onnx = Path.Combine(outDir, "model.onnx");
var export = OnnxExporter.Export(s2.LastCheckpoint, onnx);
Console.WriteLine($"exported {export.Path} ({export.Bytes / 1e6:F1} MB, {export.Nodes} nodes)");
using (var model = ImageClassifier.Load(onnx))
{
    var p = model.Predict(cat, topK: 3);
    Console.WriteLine(
        $"{Path.GetFileName(cat)}: {string.Join(", ", p.Top.Select(t => $"{t.Name} {t.Probability:P1}"))} " +
        $"({model.Engine})");
}
return 0;

static string FindRepo(string from)
{
    for (var d = new DirectoryInfo(from); d is not null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "H2T.slnx"))) return d.FullName;
    return Directory.GetCurrentDirectory();
}
