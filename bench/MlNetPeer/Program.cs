using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using H2T.MlNetPeer;

// The ML.NET peer of issue 40: ML.NET's stock transfer learning on the split `h2t fit` writes. Usage in README.md.
const string Usage =
    "usage: MlNetPeer (--train TRAIN.csv [--train VAL.csv ...] --test TEST.csv | --folder ROOT) " +
    "[--classes classes.csv] --out result.json [--threads N]";

try
{
    return Run(args);
}
catch (InputException e)
{
    Console.Error.WriteLine($"MlNetPeer: {e.Message}");
    return 2;
}

static int Run(string[] args)
{
    var total = Stopwatch.StartNew();
    var trainFiles = new List<string>();
    string? testFile = null, classesFile = null, folder = null, outFile = null;
    int threads = Environment.ProcessorCount;
    for (int i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i]
            : throw new InputException($"{args[i]} needs a value\n{Usage}");
        switch (args[i])
        {
            case "--train": trainFiles.Add(Value()); break;
            case "--test": testFile = Value(); break;
            case "--classes": classesFile = Value(); break;
            case "--folder": folder = Value(); break;
            case "--out": outFile = Value(); break;
            case "--threads":
                string t = Value();
                if (!int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out threads) || threads < 1)
                    throw new InputException($"--threads {t}: expected a positive whole number");
                break;
            case "-h" or "--help": Console.WriteLine(Usage); return 0;
            default: throw new InputException($"unknown argument {args[i]}\n{Usage}");
        }
    }
    if (outFile is null) throw new InputException($"--out is required\n{Usage}");
    if (folder is not null && (trainFiles.Count > 0 || testFile is not null))
        throw new InputException("give either --folder or --train/--test, not both");
    if (folder is null && (trainFiles.Count == 0 || testFile is null))
        throw new InputException($"--train and --test (or --folder) are required\n{Usage}");

    // --threads limits the whole process (ONNX Runtime sizes its pool from the CPUs it may use; the featurizer
    // offers no thread option) and the L-BFGS trainer.
    if (threads < Environment.ProcessorCount)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsWindows())
            Process.GetCurrentProcess().ProcessorAffinity = (nint)((1L << threads) - 1);
        else throw new InputException("--threads below the CPU count needs Linux or Windows (processor affinity)");
    }

    var train = folder is null
        ? trainFiles.SelectMany(LabelledImages.ReadCsv).ToList()
        : LabelledImages.ReadFolder(folder, "train");
    var test = folder is null ? LabelledImages.ReadCsv(testFile!) : LabelledImages.ReadFolder(folder, "test");
    var classes = classesFile is null ? null : LabelledImages.ReadClasses(classesFile);
    string[] names = classes?.Select(c => c.Name).ToArray()
        ?? [.. train.Select(r => r.Label).Distinct().Order(StringComparer.Ordinal)];
    var index = names.Select((n, k) => (n, k)).ToDictionary(p => p.n, p => p.k, StringComparer.Ordinal);
    var trainedClasses = train.Select(r => r.Label).ToHashSet(StringComparer.Ordinal);
    foreach (var r in train.Concat(test))
    {
        if (classesFile is not null && !index.ContainsKey(r.Label))
            throw new InputException($"{r.Source}: class {r.Label} is not in {classesFile}");
        if (!trainedClasses.Contains(r.Label))
            throw new InputException($"{r.Source}: test class {r.Label} has no training images");
    }
    if (trainedClasses.Count < 2)
        throw new InputException(
            $"only one class ({trainedClasses.First()}) in the training data; a classifier needs two or more");

    var machine = MachineInfo.Read();
    Console.WriteLine($"ML.NET peer: {train.Count} training and {test.Count} test images, {names.Length} classes, " +
        $"{threads} threads, {machine.CpuModel}");
    PeerOutcome outcome;
    try
    {
        outcome = PeerRun.Run(train, test, threads);
    }
    catch (Exception e) when (e is InvalidOperationException or ArgumentException)
    {
        // ML.NET's message for an image it cannot decode names no file; find it with the same decoder.
        var bad = LabelledImages.FirstUndecodable(train.Concat(test));
        if (bad is null) throw;
        throw new InputException($"{bad.Value.Image.Source}: image {bad.Value.Image.Path} cannot be decoded " +
            $"by ML.NET's image loader (SkiaSharp), which says: {bad.Value.Error}");
    }

    int n = names.Length;
    var confusion = new int[n][];
    for (int k = 0; k < n; k++) confusion[k] = new int[n];
    for (int j = 0; j < test.Count; j++) confusion[index[test[j].Label]][index[outcome.Predicted[j]]]++;
    var trainCounts = names.Select(c => train.Count(r => r.Label == c)).ToArray();
    var perClass = names.Select((c, k) => new
    {
        name = c,
        group = classes?[k].Group,
        train = trainCounts[k],
        test = confusion[k].Sum(),
        correct = confusion[k][k],
        accuracy = confusion[k].Sum() == 0 ? (double?)null : (double)confusion[k][k] / confusion[k].Sum(),
    }).ToArray();
    double? Mean(IEnumerable<double?> xs)
    {
        var v = xs.Where(x => x.HasValue).Select(x => x!.Value).ToArray();
        return v.Length == 0 ? null : v.Average();
    }
    double? GroupMean(string g) =>
        classes is null ? null : Mean(perClass.Where(p => p.group == g).Select(p => p.accuracy));
    double meanPerClass = Mean(perClass.Select(p => p.accuracy)) ?? 0;
    double micro = (double)perClass.Sum(p => p.correct) / test.Count;
    double totalSeconds = total.Elapsed.TotalSeconds;

    var result = new
    {
        tool = "ML.NET",
        peer = "bench/MlNetPeer: ML.NET's documented transfer learning (DnnImageFeaturizer ResNet-18, frozen, " +
            "plus LbfgsMaximumEntropy)",
        versions = new
        {
            microsoft_ml = MachineInfo.VersionOf(typeof(Microsoft.ML.MLContext)),
            image_analytics = MachineInfo.VersionOf(typeof(Microsoft.ML.Data.ImageLoadingEstimator)),
            onnx_transformer = MachineInfo.VersionOf(typeof(Microsoft.ML.Transforms.Onnx.OnnxScoringEstimator)),
            dnn_image_featurizer_resnet18 = MachineInfo.VersionOf(typeof(Microsoft.ML.ResNet18Extension)),
            onnxruntime = MachineInfo.VersionOf(typeof(Microsoft.ML.OnnxRuntime.InferenceSession)),
            dotnet = Environment.Version.ToString(),
        },
        pipeline = outcome.Pipeline,
        trainer = outcome.Trainer,
        cpu = new
        {
            model = machine.CpuModel,
            avx512_bf16 = machine.Avx512Bf16,
            amx_bf16 = machine.AmxBf16,
            logical_cpus = machine.LogicalCpus,
        },
        threads,
        inputs = new
        {
            train = folder is null ? trainFiles.Select(Path.GetFullPath).ToArray() : [Path.Combine(folder, "train")],
            test = folder is null ? Path.GetFullPath(testFile!) : Path.Combine(folder, "test"),
            classes = classesFile is null ? null : Path.GetFullPath(classesFile),
        },
        counts = new { train = train.Count, test = test.Count, classes = n },
        per_class = perClass,
        mean_per_class_accuracy = meanPerClass,
        micro_accuracy = micro,
        head = GroupMean("head"),
        medium = GroupMean("medium"),
        tail = GroupMean("tail"),
        groups = classes is null ? "not given (no --classes)" : "from " + Path.GetFileName(classesFile),
        confusion = new { rows = "true class", columns = "predicted class", classes = names, matrix = confusion },
        seconds = new { total = totalSeconds, featurize_train = outcome.FitSeconds, predict = outcome.PredictSeconds },
        finished_utc = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
    };
    string full = Path.GetFullPath(outFile);
    Directory.CreateDirectory(Path.GetDirectoryName(full)!);
    string temp = $"{full}.tmp-{Environment.ProcessId}";
    File.WriteAllText(temp, JsonSerializer.Serialize(result, new JsonSerializerOptions
    {
        WriteIndented = true,
        // Plain quotes and arrows in the JSON: it is read by people and by h2t, never embedded in HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    }));
    File.Move(temp, full, overwrite: true);

    var ci = CultureInfo.InvariantCulture;
    Console.WriteLine();
    Console.WriteLine(string.Create(ci, $"{"class",-24} {"group",-7} {"train",6} {"test",6} {"acc",7}"));
    foreach (var p in perClass)
        Console.WriteLine(string.Create(ci,
            $"{p.name,-24} {p.group ?? "-",-7} {p.train,6} {p.test,6} {(p.accuracy is { } a ? $"{a:P1}" : "-"),7}"));
    string Pct(double? x) => x is { } v ? v.ToString("P1", ci) : "-";
    Console.WriteLine();
    Console.WriteLine($"mean per-class {Pct(meanPerClass)}  micro {Pct(micro)}  head {Pct(result.head)}  " +
        $"medium {Pct(result.medium)}  tail {Pct(result.tail)}");
    Console.WriteLine(string.Create(ci, $"wall time: total {totalSeconds:F1} s, featurize+train " +
        $"{outcome.FitSeconds:F1} s, predict {outcome.PredictSeconds:F1} s; {threads} threads on {machine.CpuModel}"));
    Console.WriteLine($"wrote {full}");
    return 0;
}
