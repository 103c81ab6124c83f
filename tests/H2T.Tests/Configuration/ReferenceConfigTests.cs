using H2T.Configuration;
using H2T.Data;
using H2T.Settings;
using H2T.Tests.Data;

namespace H2T.Tests.Configuration;

/// <summary>YAML configs with the reference's keys: the authors' own files bind unchanged; bad keys name file and
/// line.</summary>
public sealed class ReferenceConfigTests : IDisposable
{
    readonly TempDir dir = new();

    static string Reference(string name) =>
        Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Configuration", "Fixtures", "reference", name);

    string Write(string text, string name = "c.yaml")
    {
        var path = Path.Combine(dir.Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    static ExperimentConfig Bind(StageMode mode, string path, params string[] overrides) =>
        ReferenceConfig.Bind(mode, [.. ConfigReader.ReadFile(path), .. overrides.Select(ConfigReader.ReadOverride)]);

    [Fact]
    public void TheAuthorsStageOneConfigBindsUnchanged()
    {
        var c = Bind(StageMode.StageOne, Reference("cifar100_imb001_stage1_ce_mixup.yaml"));
        Assert.Equal("cifar100_imb001_stage1_ce_mixup", c.Name);
        Assert.Equal("cifar100", c.Data.Dataset);
        Assert.Equal("./data/cifar100", c.Data.DataPath);
        Assert.Equal(100, c.Data.ImbFactor, 9); // 0.01 in the reference's n_min / n_max convention
        Assert.Equal("resnet32", c.StageOne.Backbone);
        Assert.Equal(200, c.StageOne.Epochs);
        Assert.Equal(0.1, c.StageOne.Optim.Lr);
        Assert.Equal(2e-4, c.StageOne.Optim.WeightDecay);
        Assert.Equal(0.9, c.StageOne.Optim.Momentum);
        Assert.Equal(128, c.StageOne.Optim.BatchSize);
        Assert.Equal(1.0, c.StageOne.MixupAlpha);
        Assert.Equal(Enumerable.Range(0, 36), c.Data.Groups!.Head);
        Assert.Equal(Enumerable.Range(36, 35), c.Data.Groups.Medium);
        Assert.Equal(Enumerable.Range(71, 29), c.Data.Groups.Tail);
        Assert.Same(c.Data, c.StageOne.Data);
        Assert.Equal("current.pth.tar", c.Resume);
        Assert.Contains(c.Ignored, i => i.StartsWith("workers", StringComparison.Ordinal));
        c.StageOne.Validate();
    }

    [Fact]
    public void TheAuthorsStageTwoConfigBindsUnchanged()
    {
        var c = Bind(StageMode.StageTwo, Reference("cifar100_imb001_stage2_ce_H2T.yaml"));
        var two = c.StageTwo;
        Assert.Equal(0.25, two.Rho);
        Assert.True(two.ShiftBn);
        Assert.Equal("balanced", two.TailSampler);
        Assert.Equal("instance", two.HeadSampler);
        Assert.Equal(0.2, two.LrFactor);
        Assert.Equal(ScheduleKind.Cosine, two.Schedule.Kind);
        Assert.Equal(10, two.Epochs);
        Assert.Equal(5e-4, two.Optim.WeightDecay);
        Assert.Equal("ce", two.Loss.Type);
        Assert.Equal("./cifar100_imb001_stage1.pth.tar", c.Resume);
        two.Validate();
    }

    [Fact]
    public void OverridesUseDottedKeysAndWinOverTheFile()
    {
        var c = Bind(StageMode.StageTwo, Reference("cifar100_imb001_stage2_ce_H2T.yaml"),
            "H2T=0.5", "lr_scheduler.lr_factor=0.1", "sampler.weighted_sampler.type=reverse", "head_class_idx=[0,30]",
                "med_class_idx=[30,70]", "tail_class_idx=[70,100]");
        Assert.Equal(0.5, c.StageTwo.Rho);
        Assert.Equal(0.1, c.StageTwo.LrFactor);
        Assert.Equal("reverse", c.StageTwo.TailSampler);
        Assert.Equal(30, c.Data.Groups!.Head.Length);
    }

    [Fact]
    public void FlagsMapToTheSameSettingsAsTheirConfigKeys()
    {
        // Each stage-2 flag and its key, given the same value, must produce identical typed settings.
        var empty = Write("mode: stage2\n");
        string[][] pairs =
        [
            ["--rho", "0.4", "H2T=0.4"], ["--lr-factor", "0.5", "lr_scheduler.lr_factor=0.5"], ["--sampler", "reverse",
                "sampler.weighted_sampler.type=reverse"],
            ["--shift-bn", "off", "shift_bn=false"], ["--epochs", "3", "num_epochs=3"], ["--wd", "0.001",
                "weight_decay=0.001"],
            ["--loss", "bsce", "loss.type=BalancedSoftmax"], ["--schedule", "constant", "lr_scheduler.type=constant"],
        ];
        foreach (var p in pairs)
        {
            var viaFlag = ReferenceConfig.Bind(StageMode.StageTwo,
                [.. ConfigReader.ReadFile(empty), .. H2T.Tests.Cli.CliFlags.Entries(StageMode.StageTwo, [p[0], p[1]])]);
            var viaKey = Bind(StageMode.StageTwo, empty, p[2]);
            Assert.Equal(System.Text.Json.JsonSerializer.Serialize(viaKey.StageTwo),
                System.Text.Json.JsonSerializer.Serialize(viaFlag.StageTwo));
            Assert.NotEqual(System.Text.Json.JsonSerializer.Serialize(new StageTwoConfig()),
                System.Text.Json.JsonSerializer.Serialize(viaFlag.StageTwo));
        }
    }

    [Fact]
    public void ClassifierAndSwitchSpellingsComeFromOneTableForFlagsAndKeysAlike()
    {
        var one = Write("mode: stage1\n", "one.yaml");
        foreach (var (alias, kind) in new[] { ("fc", "linear"), ("FCNorm", "cosine"), ("normed", "cosine"),
            ("normedlinear", "cosine"), ("lws", "lws") })
        {
            Assert.Equal(kind, Bind(StageMode.StageOne, one, $"classifier={alias}").StageOne.Classifier);
            var flags = H2T.Tests.Cli.CliFlags.Entries(StageMode.StageOne, ["--classifier", alias]);
            Assert.Equal(kind, ReferenceConfig.Bind(StageMode.StageOne, flags).StageOne.Classifier);
        }
        var two = Write("mode: stage2\n", "two.yaml");
        foreach (var (spelling, on) in new[] { ("on", true), ("1", true), ("yes", true), ("off", false), ("0", false),
            ("no", false) })
        {
            Assert.Equal(on, Bind(StageMode.StageTwo, two, $"shift_bn={spelling}").StageTwo.ShiftBn);
            var flags = H2T.Tests.Cli.CliFlags.Entries(StageMode.StageTwo, ["--shift-bn", spelling]);
            Assert.Equal(on, ReferenceConfig.Bind(StageMode.StageTwo, flags).StageTwo.ShiftBn);
        }
    }

    [Fact]
    public void TheMixupFlagMapsToItsKeyAndAFlagWithoutAKeyIsRefused()
    {
        var file = Write("mode: stage1\nmixup: True\nalpha: 1.0\n");
        var c = ReferenceConfig.Bind(StageMode.StageOne,
            [.. ConfigReader.ReadFile(file), .. H2T.Tests.Cli.CliFlags.Entries(StageMode.StageOne, ["--mixup", "0"])]);
        Assert.Equal(0, c.StageOne.MixupAlpha);
        var typed = H2T.Tests.Cli.CliFlags.Entries(StageMode.StageOne, ["--mixup=0.3", "--out", "x", "--resume"]);
        c = ReferenceConfig.Bind(StageMode.StageOne, [.. ConfigReader.ReadFile(file), .. typed]);
        Assert.Equal(0.3, c.StageOne.MixupAlpha);
        // A setting flag someone declared without its row in the table (not a run option) is refused, not dropped.
        var e = Assert.Throws<ConfigException>(
            () => H2T.Tests.Cli.CliFlags.Entries<WithUnkeyedFlag>(StageMode.StageOne, ["--full"]));
        Assert.Contains("flag --full: has no config key", e.Message);
    }

    [Theory]
    [InlineData("lr: 0.1\nlearning_rate: 0.2\n", "c.yaml:2", "unknown key 'learning_rate'")]
    [InlineData("dataset: cifar10\nlr: fast\n", "c.yaml:2", "lr: expected a number, got 'fast'")]
    [InlineData("momentum: 1.5\n", "c.yaml:1", "momentum")]
    [InlineData("num_epochs: 0\n", "c.yaml:1", "num_epochs")]
    [InlineData("imb_factor: -3\n", "c.yaml:1", "imb_factor")]
    [InlineData("dataset: svhn\n", "c.yaml:1", "dataset")]
    [InlineData("backbone: vit_b16\n", "c.yaml:1", "backbone")]
    [InlineData("mode: 'stage2'\n", "c.yaml:1", "'stage1' for this command")]
    [InlineData("H2T: 0.25\n", "c.yaml:1", "applies to stage 2 only")]
    [InlineData("mixup: True\nalpha: null\n", "c.yaml:1", "alpha")]
    [InlineData("head_class_idx: [0, 3]\n", "c.yaml:1", "all three")]
    [InlineData("head_class_idx: [0, 3]\nmed_class_idx: [4, 7]\ntail_class_idx: [7, 10]\n", "c.yaml:", "without gaps")]
    [InlineData("num_experts: 3\n", "c.yaml:1", "multi-expert")]
    [InlineData("backbone: 'ride_resnet32'\nnum_experts: 4\n", "c.yaml:2", "3 for backbone")]
    [InlineData("lr: 0.1\n  bad indent: [\n", "c.yaml:2", "not valid YAML")]
    [InlineData("lr: 0.1\nlr: 0.2\n", "c.yaml:2", "not valid YAML")]
    [InlineData("- lr\n- 0.1\n", "c.yaml:1", "mapping")]
    public void BadConfigsNameTheFileLineAndKey(string yaml, string where, string what)
    {
        var path = Write(yaml);
        var e = Assert.Throws<ConfigException>(() => Bind(StageMode.StageOne, path));
        Assert.Contains(path + where[6..], e.Message);
        Assert.Contains(what, e.Message);
    }

    [Fact]
    public void BadOverridesNameTheOverride()
    {
        var path = Write("lr: 0.1\n");
        var e = Assert.Throws<ConfigException>(() => Bind(StageMode.StageOne, path, "lr_sceduler.type=cos"));
        Assert.Contains("override 'lr_sceduler.type=cos'", e.Message);
        Assert.Contains("did you mean 'lr_scheduler.type'", e.Message);
        e = Assert.Throws<ConfigException>(() => Bind(StageMode.StageOne, path, "batch_size"));
        Assert.Contains("expected key=value", e.Message);
        e = Assert.Throws<ConfigException>(() => Bind(StageMode.StageOne, path, "batch_size=-4"));
        Assert.Contains("batch_size", e.Message);
    }

    [Fact]
    public void EveryShippedConfigBinds()
    {
        var configs = Directory.GetFiles(Path.Combine(DataTestFiles.RepoRoot, "configs"), "*.yaml",
            SearchOption.AllDirectories);
        Assert.NotEmpty(configs);
        foreach (var f in configs)
        {
            var mode = Path.GetFileName(f).Contains("stage2",
                StringComparison.Ordinal) ? StageMode.StageTwo : StageMode.StageOne;
            var c = Bind(mode, f);
            if (mode == StageMode.StageOne) c.StageOne.Validate(); else c.StageTwo.Validate();
            Assert.True(DatasetCatalog.Names.Contains(c.Data.Dataset), f);
        }
    }

    public void Dispose() => dir.Dispose();

    /// <summary>stage1's options plus a setting flag with no config key.</summary>
    public sealed class WithUnkeyedFlag : H2T.Cli.Commands.DataOptions
    {
        [Spectre.Console.Cli.CommandOption("--full")] public bool Full { get; init; }
    }
}
