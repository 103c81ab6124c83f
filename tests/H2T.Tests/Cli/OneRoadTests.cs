using System.Reflection;
using System.Text.Json;
using H2T.Cli;
using H2T.Cli.Commands;
using H2T.Configuration;
using H2T.Settings;
using H2T.Tests.Data;
using Spectre.Console.Cli;

namespace H2T.Tests.Cli;

/// <summary>One road from the command line to a run: a flag, a YAML key and an override are three spellings of one
/// config entry, bound by one binder, with the defaults of the records and one check.</summary>
public sealed class OneRoadTests : IDisposable
{
    readonly TempDir dir = new();

    static IEnumerable<PropertyInfo> Options(Type settings) =>
        settings.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetCustomAttribute<CommandOptionAttribute>() is not null);

    static IEnumerable<string> DeclaredFlags(Type settings) => Options(settings)
        .SelectMany(p => p.GetCustomAttribute<CommandOptionAttribute>()!.LongNames).Select(n => "--" + n);

    static bool IsRunOption(PropertyInfo p) => p.IsDefined(typeof(RunOptionAttribute), true);

    /// <summary>The words parsed by Spectre into the mode's settings, then bound: the command line's one
    /// road.</summary>
    static ExperimentConfig BindFlags(StageMode mode, params string[] args) =>
        ReferenceConfig.Bind(mode, CliFlags.Entries(mode, args));

    string Write(string text, string name = "c.yaml")
    {
        var path = Path.Combine(dir.Path, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Theory]
    [InlineData(typeof(StageOneSettings), StageMode.StageOne)]
    [InlineData(typeof(ImportSettings), StageMode.StageOne)]
    [InlineData(typeof(DataOptions), StageMode.StageOne)]
    [InlineData(typeof(StageTwoSettings), StageMode.StageTwo)]
    [InlineData(typeof(SweepSettings), StageMode.Sweep)]
    public void EveryFlagOfATrainingCommandIsAConfigKeyOrARunOption(Type settings, StageMode mode)
    {
        foreach (var p in Options(settings))
        {
            var flag = "--" + p.GetCustomAttribute<CommandOptionAttribute>()!.LongNames[0];
            var key = ReferenceConfig.FlagKey(mode, flag);
            Assert.True(key is not null || IsRunOption(p), $"{settings.Name} {flag}: no config key");
            // A run option is never also a setting: the binder would skip its value.
            Assert.False(key is not null && IsRunOption(p),
                $"{settings.Name} {flag}: a run option with the config key {key}");
        }
    }

    [Fact]
    public void EveryStageOneKeyWithAFlagIsDeclaredByStage1()
    {
        var declared = DeclaredFlags(typeof(StageOneSettings)).ToHashSet();
        foreach (var (flag, key) in ReferenceConfig.Flags(StageMode.StageOne))
            Assert.True(declared.Contains(flag), $"{key}'s flag {flag} is not an option of h2t stage1");
    }

    [Fact]
    public void TheDefaultsAreTheRecordsOwn()
    {
        static string Json(object o) => JsonSerializer.Serialize(o, o.GetType());
        Assert.Equal(Json(new StageOneConfig()), Json(BindFlags(StageMode.StageOne).CheckedStageOne!.Value));
        Assert.Equal(Json(new StageTwoConfig()), Json(BindFlags(StageMode.StageTwo).CheckedStageTwo!.Value));
        var sweep = BindFlags(StageMode.Sweep).CheckedSweep!.Value;
        Assert.Equal(SweepConfig.DefaultRhos, sweep.Rhos);
        Assert.Equal(new SweepConfig(new StageTwoConfig(), [0]).ValidationPerClass, sweep.ValidationPerClass);
        Assert.Equal(Json(new StageTwoConfig()), Json(sweep.StageTwo));
    }

    /// <summary>--help says the defaults in words ("default 30", "cosine (default)"); each is checked against the
    /// records by binding the flag at that value, which must change nothing.</summary>
    [Theory]
    [InlineData(typeof(StageOneSettings), StageMode.StageOne)]
    [InlineData(typeof(StageTwoSettings), StageMode.StageTwo)]
    [InlineData(typeof(SweepSettings), StageMode.Sweep)]
    public void TheDefaultsTheHelpSaysAreTheRecordsOwn(Type settings, StageMode mode)
    {
        static string Json(ExperimentConfig c) =>
            JsonSerializer.Serialize((object?)c.CheckedStageOne?.Value ?? (object?)c.CheckedStageTwo?.Value ??
                c.CheckedSweep?.Value);
        var baseline = Json(BindFlags(mode));
        int said = 0;
        foreach (var p in settings.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetCustomAttribute<CommandOptionAttribute>() is not { } option ||
                p.GetCustomAttribute<System.ComponentModel.DescriptionAttribute>() is not { } d) continue;
            var m = System.Text.RegularExpressions.Regex.Match(d.Description,
                @"\(default (?<v>[^;,)\s]+)|default (?<v>[^;,)\s\[]+) \[|(?<v>[\w.:-]+) \(default[):]");
            // Run options are not settings: their defaults (--threads: all cores) are no record's.
            if (!m.Success || p.PropertyType == typeof(bool) || IsRunOption(p)) continue;
            var flag = "--" + option.LongNames[0];
            var value = m.Groups["v"].Value;
            Assert.True(Json(BindFlags(mode, flag, value)) == baseline,
                $"{settings.Name} {flag}: the help says the default is {value}, the record's is not");
            said++;
        }
        Assert.True(said >= 10, $"only {said} defaults found in {settings.Name}'s help");
    }

    [Fact]
    public void AFlagAnOverrideAndAYamlKeyAreOneEntry()
    {
        var file = Write("mode: stage1\nimage_size: 96\nlr: 0.2\n");
        // --image-size has its key, so it combines with --config (it used to be refused with "set it in the file").
        var c = ReferenceConfig.Bind(StageMode.StageOne,
            [.. ConfigReader.ReadFile(file), .. CliFlags.Entries(StageMode.StageOne, ["--image-size", "64"])]);
        Assert.Equal(64, c.Data.ImageSize);
        Assert.Equal(0.2, c.StageOne.Optim.Lr);
        foreach (var (flag, value, key) in new[] { ("--prefetch", "0", "prefetch"), ("--memory-layout", "nchw",
            "memory_layout"), ("--resize", "64", "resize"), ("--imb-factor", "0.5", "imb_factor") })
        {
            var viaFlag = BindFlags(StageMode.StageOne, flag, value).CheckedStageOne!.Value;
            var viaOverride = ReferenceConfig.Bind(StageMode.StageOne,
                [ConfigReader.ReadOverride($"{key}={value}")]).CheckedStageOne!.Value;
            Assert.Equal(JsonSerializer.Serialize(viaOverride), JsonSerializer.Serialize(viaFlag));
            Assert.NotEqual(JsonSerializer.Serialize(new StageOneConfig()), JsonSerializer.Serialize(viaFlag));
        }
        Assert.Equal(FeatureLayout.Nchw, BindFlags(StageMode.StageTwo, "--memory-layout", "nchw").StageTwo.Layout);
    }

    [Fact]
    public void ASweepsRhoIsAListEntryLikeAnyOther()
    {
        Assert.Equal([0, 0.25, 0.5], BindFlags(StageMode.Sweep, "--rho", "0:0.5:0.25").CheckedSweep!.Value.Rhos);
        var yaml = Write("mode: stage2\nH2T: 0.3\nsweep:\n  rho: [0, 0.5]\n");
        Assert.Equal([0, 0.5], ReferenceConfig.Bind(StageMode.Sweep,
            ConfigReader.ReadFile(yaml)).CheckedSweep!.Value.Rhos);
        Assert.Equal([0.1, 0.2], ReferenceConfig.Bind(StageMode.Sweep,
            [ConfigReader.ReadOverride("sweep.rho=[0.1, 0.2]")]).CheckedSweep!.Value.Rhos);
        // A stage-2 config's single H2T value is the single run's, not the sweep's.
        var single = Write("mode: stage2\nH2T: 0.3\n", "single.yaml");
        Assert.Equal(SweepConfig.DefaultRhos, ReferenceConfig.Bind(StageMode.Sweep,
            ConfigReader.ReadFile(single)).CheckedSweep!.Value.Rhos);
        Assert.Equal(0.3, ReferenceConfig.Bind(StageMode.StageTwo,
            ConfigReader.ReadFile(single)).CheckedStageTwo!.Value.Rho);
        Assert.Contains("applies to h2t sweep only",
            Assert.Throws<ConfigException>(() => ReferenceConfig.Bind(StageMode.StageTwo,
            ConfigReader.ReadFile(yaml))).Message);
    }

    [Fact]
    public void AValueIsCheckedOnceByItsRecordAndTheErrorPointsWhereItWasSet()
    {
        var e = Assert.Throws<ConfigException>(() => BindFlags(StageMode.StageTwo, "--rho", "1.5"));
        Assert.Equal("--rho 1.5: H2T: rho must lie in [0, 1], got 1.5", e.Message);
        var yaml = Write("mode: stage2\nlr: 0.1\nmix_fea: 2\n");
        e = Assert.Throws<ConfigException>(() => ReferenceConfig.Bind(StageMode.StageTwo, ConfigReader.ReadFile(yaml)));
        Assert.StartsWith($"{yaml}:3: mix_fea: rho must lie in [0, 1]", e.Message);
        e = Assert.Throws<ConfigException>(() => BindFlags(StageMode.Sweep, "--rho", "0,2"));
        Assert.StartsWith("--rho 0,2: sweep.rho: rho must lie in [0, 1], got 2", e.Message);
        e = Assert.Throws<ConfigException>(() => ReferenceConfig.Bind(StageMode.StageOne,
            [ConfigReader.ReadOverride("loss.CB.beta=1.5")]));
        Assert.StartsWith("override 'loss.CB.beta=1.5': loss.CB.beta: loss.CB.beta must lie in [0, 1]", e.Message);
        e = Assert.Throws<ConfigException>(() => BindFlags(StageMode.StageOne, "--precision", "fp8"));
        Assert.Contains("--precision fp8: precision: expected fp32, bf16 or auto", e.Message);
    }

    [Fact]
    public void OverridesWorkWithoutAConfigAndTauNormErrorsSayTau()
    {
        var (rc, output) = CliRunner.Run("stage1", "loss.focal.gamma=-1", "--loss", "focal", "--out",
            Path.Combine(dir.Path, "x"));
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("override 'loss.focal.gamma=-1': loss.focal.gamma: loss.focal.gamma must be >= 0", output);
        (rc, output) = CliRunner.Run("tau-norm", "--from", Path.Combine(dir.Path, "none.ckpt"), "--tau", "0:x:1");
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("tau '0:x:1'", output);
        Assert.DoesNotContain("rho", output);
    }

    /// <summary>Switches are known to Spectre by their declaration (a bool property), not by a list kept beside it: a
    /// new switch takes no value, so the word after it stays an override or the next flag.</summary>
    [Fact]
    public void ASwitchNeverSwallowsTheNextWord()
    {
        var entries = CliFlags.Entries<WithNewSwitch>(StageMode.StageOne,
            ["--new-switch", "lr=0.2", "--nesterov", "--epochs", "3"]);
        Assert.Equal(["nesterov", "num_epochs"], entries.Select(e => e.Key).Order(StringComparer.Ordinal));
        Assert.Equal("--nesterov true", entries.Single(e => e.Key == "nesterov").Where);
        var settings = CliFlags.Parse<WithNewSwitch>("--new-switch", "lr=0.2");
        Assert.True(settings.NewSwitch);
        Assert.Equal(["lr=0.2"], settings.Overrides);
        // stage2: --reinit and --tensorboard (a run option) before an override leave it an override.
        var two = CliFlags.Parse<StageTwoSettings>("--reinit", "H2T=0.5", "--tensorboard", "lr=0.3");
        Assert.Equal(["H2T=0.5", "lr=0.3"], two.Overrides);
        Assert.Equal(["reinit_classifier"], ConfigSupport.FlagEntries(StageMode.StageTwo, two).Select(e => e.Key));
    }

    [Fact]
    public void ASettingSwitchGivenFalseIsFalseAndEverySettingSwitchCanSayIt()
    {
        // --nesterov=false is the entry false, so it overrides a config file's nesterov: true; left off, no entry.
        var off = CliFlags.Entries(StageMode.StageOne, "--nesterov=false", "--epochs", "3");
        Assert.Equal("false", off.Single(e => e.Key == "nesterov").Scalar);
        Assert.DoesNotContain(CliFlags.Entries(StageMode.StageOne, "--epochs", "3"), e => e.Key == "nesterov");
        Assert.Equal("false", CliFlags.Entries(StageMode.StageTwo, "--reinit=false")
            .Single(e => e.Key == "reinit_classifier").Scalar);
        // Every switch that stands for a config key is bool?, so "not given" and "false" stay apart.
        foreach (var type in new[] { typeof(StageOneSettings), typeof(StageTwoSettings), typeof(SweepSettings) })
            foreach (var p in type.GetProperties())
                if (p.GetCustomAttributes(typeof(Spectre.Console.Cli.CommandOptionAttribute), true).Length > 0
                    && !p.IsDefined(typeof(RunOptionAttribute), true) && p.PropertyType == typeof(bool))
                    Assert.Fail($"{type.Name}.{p.Name}: a setting switch must be bool? (null: not given)");
    }

    [Fact]
    public void ARepeatedSweepFlagIsOneEntryPerValueAndErrorsNameTheFlag()
    {
        var c = BindFlags(StageMode.Sweep, "--rho", "0.25", "--sweep", "lr=0.1,0.2",
            "--sweep", "weight_decay=0.001,0.002").CheckedSweep!.Value;
        Assert.Equal(["lr", "weight_decay"], c.Options.Select(o => o.Key));
        Assert.Equal(4, c.Points().Count);
        var e = Assert.Throws<ConfigException>(() => BindFlags(StageMode.Sweep, "--sweep", "lr"));
        Assert.StartsWith("--sweep lr: expected KEY=VALUES", e.Message);
    }

    /// <summary>stage1's data options and a switch added later, unknown to any list.</summary>
    public sealed class WithNewSwitch : DataOptions
    {
        [CommandOption("--new-switch")] [RunOption] public bool NewSwitch { get; init; }
        [CommandOption("--nesterov")] public bool Nesterov { get; init; }
        [CommandOption("--epochs <E>")] public string? Epochs { get; init; }
        [CommandArgument(0, "[OVERRIDES]")] public string[] Overrides { get; init; } = [];
    }

    public void Dispose() => dir.Dispose();
}
