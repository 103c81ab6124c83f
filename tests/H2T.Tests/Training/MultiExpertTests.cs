using H2T.Runs;
using H2T.Data;
using H2T.Cli;
using H2T.Fusion;
using H2T.Losses;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Training;
using Spectre.Console.Testing;
using static TorchSharp.torch;
using H2T.Tests.Data;
using H2T.Tests.Training;

namespace H2T.Tests.Training;

/// <summary>RIDE and ResLT: their backbones, classifiers, losses, per-expert H2T and their configs end to
/// end.</summary>
public sealed class MultiExpertTests : IDisposable
{
    readonly TinyLongTailedSet set = new(perClassTrain: 40, perClassTest: 10);
    readonly TempDir dir = new();

    public MultiExpertTests() => TorchRuntime.Initialize(2);

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void RideSharesTheStemAndFirstStageAndConcatenatesOneMapPerExpert()
    {
        using var scope = NewDisposeScope();
        using var ride = new RideResNetCifar(8, 1);
        Assert.Equal(3, ride.Experts);
        Assert.Equal(3 * 48, ride.FeatureChannels);
        var names = ride.state_dict().Keys.ToList();
        // RIDE's own state-dict names: one shared layer1, three copies of layers 2 and 3.
        Assert.Contains("layer1.0.conv1.weight", names);
        Assert.Contains("layer2s.2.0.conv1.weight", names);
        Assert.Contains("layer3s.2.0.bn2.running_var", names);
        Assert.DoesNotContain(names, n => n.StartsWith("layer2s.3", StringComparison.Ordinal) || n.StartsWith("layer1s",
            StringComparison.Ordinal));
        Assert.Equal(24, ride.state_dict()["layer2s.0.0.conv1.weight"].shape[0]);
        ride.eval();
        var x = randn(2, 1, 28, 28);
        var map = ride.call(x);
        Assert.Equal(new long[] { 2, 144, 7, 7 }, map.shape);
        var experts = ride.ForwardExperts(x);
        Assert.Equal(3, experts.Count);
        for (int e = 0; e < 3; e++) Assert.True(Same(experts[e], map[.., TensorIndex.Slice(e * 48, (e + 1) * 48)]));
        // The experts are different networks (independent init), not copies.
        Assert.False(experts[0].allclose(experts[1]));
        // Expert 1's own layers feed channels 48-95 and nothing else.
        using (no_grad()) ride.state_dict()["layer3s.1.0.conv2.weight"].mul_(3.0);
        var changed = ride.call(x);
        Assert.True(Same(changed[.., ..48], map[.., ..48]));
        Assert.False(changed[.., 48..96].allclose(map[.., 48..96]));
        Assert.True(Same(changed[.., 96..], map[.., 96..]));
        // ... while the shared stem feeds every expert.
        using (no_grad()) ride.state_dict()["layer1.0.conv1.weight"].mul_(3.0);
        var stem = ride.call(x);
        for (int e = 0; e < 3; e++) Assert.False(stem[.., (e * 48)..((e + 1) * 48)].allclose(changed[..,
            (e * 48)..((e + 1) * 48)]));
    }

    [Fact]
    public void ResLtBranchesDifferOnlyByTheirBatchNormAndShareOneClassifier()
    {
        using var scope = NewDisposeScope();
        using var reslt = new ResLtResNetCifar(8, 1);
        Assert.Equal(192, reslt.FeatureChannels);
        Assert.Contains("BNM.weight", reslt.state_dict().Keys);
        // The trunk keeps the plain ResNet's names (the base class registers them).
        Assert.Contains("conv1.weight", reslt.state_dict().Keys);
        Assert.Contains("layer3.0.bn2.running_mean", reslt.state_dict().Keys);
        reslt.eval();
        var x = randn(2, 1, 28, 28);
        var branches = reslt.ForwardExperts(x);
        // Fresh BatchNorms are the same affine map in eval mode: the three branches start equal.
        Assert.True(branches[0].allclose(branches[1]) && branches[1].allclose(branches[2]));
        using (no_grad()) reslt.state_dict()["BNT.weight"].fill_(2.0);
        var after = reslt.ForwardExperts(x);
        Assert.True(after[0].allclose(after[1]));
        Assert.True(after[2].allclose(after[0] * 2, 1e-4, 1e-5));

        using var head = (ResLtHead)ModelFactory.CreateHead("reslt", reslt, 10);
        var pooled = randn(4, 64);
        var z = head.ExpertLogits(cat([pooled, pooled, pooled], 1));
        Assert.True(Same(z[.., 0], z[.., 2]));                          // one classifier for every branch
        var features = randn(4, 192, 3, 3);
        Assert.True(head.call(features).allclose(head.ExpertLogits(features).sum([1L]), 1e-5, 1e-6)); // output = sum
        Assert.IsType<ResLtHead>(ModelFactory.CreateHead("linear", reslt, 10)); // the default means the backbone's own
        Assert.Throws<ArgumentException>(() => ModelFactory.CreateHead("lws", reslt, 10));
        using var plain = new ResNetCifar(8, 1);
        Assert.Throws<ArgumentException>(() => ModelFactory.CreateHead("ride", plain, 10));
    }

    [Fact]
    public void TheFactoryKnowsEachBackbonesExpertCountWithoutBuildingIt()
    {
        // The small CIFAR ones are built to check the table (the ImageNet ones are single-branch and large).
        foreach (var name in ModelFactory.BackboneNames.Where(n => n.Contains("resnet",
            StringComparison.Ordinal) && !n.EndsWith("resnet10", StringComparison.Ordinal)
            && !n.EndsWith("resnet50", StringComparison.Ordinal) && !n.EndsWith("resnet152",
                StringComparison.Ordinal) && !n.EndsWith("resnet110", StringComparison.Ordinal)))
        {
            using var b = ModelFactory.CreateBackbone(name, 1);
            Assert.Equal(b.Experts, ModelFactory.ExpertCount(name));
        }
        Assert.Equal(3, ModelFactory.ExpertCount("ride_resnet32"));
        Assert.Equal(1, ModelFactory.ExpertCount("resnet50"));
    }

    [Fact]
    public void RideHeadAveragesCosineLogitsScaledByThirty()
    {
        using var scope = NewDisposeScope();
        using var head = new RideHead(3 * 8, 5, 3);
        var features = randn(6, 24, 2, 2);
        var z = head.ExpertLogits(features);
        Assert.Equal(new long[] { 6, 3, 5 }, z.shape);
        Assert.True(z.abs().max().item<float>() <= 30.0001f);           // |cos| <= 1, times s
        Assert.True(head.call(features).allclose(z.mean([1L]), 1e-5, 1e-5));
        Assert.Contains("linears.2.weight", head.state_dict().Keys);
        // Expert 1 is 30 x the cosine between its 8 pooled channels and each column of linears.1.weight.
        var pooled = features.mean([2L, 3L])[.., 8..16];
        var w = head.state_dict()["linears.1.weight"];
        var cos = (pooled / pooled.norm(1, true)).mm(w / w.norm(0, true)) * 30;
        Assert.True(z[.., 1].allclose(cos, 1e-4, 1e-4));
    }

    /// <summary>RIDE's loss, written out in doubles (log-sum-exp per row), for one batch.</summary>
    static double RideReference(double[,,] z, long[] y, int[] counts, double maxM, double s, double lambda,
        double[]? cb, double[]? temps)
    {
        int n = z.GetLength(0), experts = z.GetLength(1), k = z.GetLength(2);
        var m = counts.Select(c => Math.Pow(c, -0.25)).ToArray();
        var mMax = m.Max();
        for (int c = 0; c < k; c++) m[c] = m[c] * maxM / mMax;
        double T(int c) => temps?[c] ?? 1.0;
        double tMean = temps?.Average() ?? 1.0;
        double total = 0;
        for (int e = 0; e < experts; e++)
        {
            double num = 0, den = 0, kl = 0;
            for (int i = 0; i < n; i++)
            {
                var row = Enumerable.Range(0, k).Select(c => z[i, e, c] - (c == y[i] ? m[c] * s : 0)).ToArray();
                var lse = Math.Log(row.Sum(Math.Exp));
                double w = cb?[y[i]] ?? 1.0;
                num += w * (lse - row[y[i]]);
                den += w;
                var mean = Enumerable.Range(0, k).Select(c => Enumerable.Range(0, experts).Average(j => z[i, j,
                    c]) / T(c)).ToArray();
                var p = mean.Select(v => Math.Exp(v - Math.Log(mean.Sum(Math.Exp)))).ToArray();
                var q = Enumerable.Range(0, k).Select(c => z[i, e, c] / T(c)).ToArray();
                var lq = Math.Log(q.Sum(Math.Exp));
                for (int c = 0; c < k; c++) kl += p[c] * (Math.Log(p[c]) - (q[c] - lq));
            }
            total += num / den + lambda * tMean * tMean * kl / n;
        }
        return total;
    }

    [Fact]
    public void RideLossMatchesItsFormulaBeforeAndAfterTheDrwEpoch()
    {
        using var scope = NewDisposeScope();
        int[] counts = [100, 30, 10, 3];
        var rng = new Random(3);
        var z = new double[5, 3, 4];
        for (int i = 0; i < 5; i++) for (int e = 0; e < 3; e++) for (int c = 0; c < 4; c++) z[i, e,
            c] = rng.NextDouble() * 20 - 10;
        long[] y = [0, 3, 2, 1, 3];
        var logits = tensor(z.Cast<double>().ToArray()).view(5, 3, 4).to(ScalarType.Float32);
        var targets = tensor(y);
        using var loss = (RideLoss)LossFactory.Create(new LossConfig("RIDELoss") { DrwStartEpoch = 2 }, counts);
        var unweighted = RideReference(z, y, counts, 0.5, 30, -0.2, null, null);
        loss.OnEpochStart(0, 4);
        Assert.Equal(unweighted, loss.ForwardExperts(logits, targets).item<float>(), 3);
        loss.OnEpochStart(1, 4); // the epoch before the DRW epoch is still unweighted
        Assert.Equal(unweighted, loss.ForwardExperts(logits, targets).item<float>(), 3);
        loss.OnEpochStart(2, 4); // class-balanced weights and per-class temperatures from here on
        var cb = ClassWeighting.EffectiveNumberWeights(counts, 0.9999);
        var after = loss.ForwardExperts(logits, targets).item<float>();
        Assert.Equal(RideReference(z, y, counts, 0.5, 30, -0.2, cb, [.. loss.ClassTemperatures]), after, 3);
        // Temperatures: (C f_c r + 1 - r) normalised by the largest, so the head class has T = 1.
        Assert.Equal(1.0, loss.ClassTemperatures[0], 6);
        Assert.True(loss.ClassTemperatures[3] < loss.ClassTemperatures[0]);
        // Without the diversity term each expert's loss is the ensemble's LDAM loss.
        using var noDiversity = (RideLoss)LossFactory.Create(new LossConfig("ride") { RideDiversityFactor = 0 },
            counts);
        var mean = new double[5, 1, 4];
        for (int i = 0; i < 5; i++) for (int c = 0; c < 4; c++) mean[i, 0, c] = (z[i, 0, c] + z[i, 1, c] + z[i, 2,
            c]) / 3;
        Assert.Equal(3 * RideReference(mean, y, counts, 0.5, 30, 0, null, null), noDiversity.ForwardExperts(logits,
            targets).item<float>(), 3);
    }

    [Fact]
    public void ResLtLossCoversHeadSamplesWithTheMainBranchOnly()
    {
        using var scope = NewDisposeScope();
        int[] counts = [50, 40, 20, 10, 5];
        using var loss = new ResLtLoss(counts, beta: 0.7, mediumStart: 2, tailStart: 4);
        var logits = randn(6, 3, 5);
        var targets = tensor(new long[] { 0, 1, 2, 3, 4, 4 });
        var z = logits.data<float>().ToArray();
        double Ce(int i, int b, long t)
        {
            var row = Enumerable.Range(0, 5).Select(c => (double)z[(i * 3 + b) * 5 + c]).ToArray();
            var p = Math.Exp(row[t]) / row.Sum(Math.Exp);
            return -Math.Log(p + 1e-7);
        }
        // Covered pairs: every sample on H, classes 2..4 on M, class 4 on T.
        var y = new long[] { 0, 1, 2, 3, 4, 4 };
        double sum = 0; int pairs = 0;
        for (int i = 0; i < 6; i++)
        {
            sum += Ce(i, 0, y[i]); pairs++;
            if (y[i] >= 2) { sum += Ce(i, 1, y[i]); pairs++; }
            if (y[i] >= 4) { sum += Ce(i, 2, y[i]); pairs++; }
        }
        double fusion = 0;
        for (int i = 0; i < 6; i++)
        {
            var row = Enumerable.Range(0,
                5).Select(c => (double)(z[(i * 3) * 5 + c] + z[(i * 3 + 1) * 5 + c] + z[(i * 3 + 2) * 5 +
                c])).ToArray();
            fusion += Math.Log(row.Sum(Math.Exp)) - row[y[i]];
        }
        var expected = 0.7 * sum / pairs + 0.3 * fusion / 6;
        Assert.Equal(expected, loss.ForwardExperts(logits, targets).item<float>(), 4);
        Assert.Throws<ArgumentException>(() => new ResLtLoss(counts, 0.5, 4, 2));
        Assert.Equal((2, 4), ResLtLoss.DefaultStarts(10));   // ResLT's CIFAR-10 split
        Assert.Equal((35, 70), ResLtLoss.DefaultStarts(100)); // and its CIFAR-100 one
        // The multi-expert losses refuse a single-branch classifier with a message that says what to use.
        using var linear = new LinearHead(8, 5);
        var e = Assert.Throws<ArgumentException>(() => loss.Forward(linear, randn(2, 8), tensor(new long[] { 0, 1 })));
        Assert.Contains("reslt_resnet32", e.Message);
        // ... and each other's head, though both have three branches; a loss that scales cosines itself refuses both.
        using var ride = new RideHead(24, 5, 3);
        Assert.Throws<ArgumentException>(() => loss.CheckHead(ride));
        using var rideLoss = new RideLoss(counts);
        using var resltHead = new ResLtHead(24, 5);
        Assert.Throws<ArgumentException>(() => rideLoss.CheckHead(resltHead));
        rideLoss.CheckHead(ride);
        using var ldam = new LdamLoss(counts);
        Assert.Contains("cosine", Assert.Throws<ArgumentException>(() => ldam.CheckHead(ride)).Message);
    }

    [Fact]
    public void GroupedFusionDrawsEachExpertsChannelsApartAndEqualsFusingTheSplitMaps()
    {
        using var scope = NewDisposeScope();
        var fusion = new HeadToTailFusion(0.25);
        var tail = randn(2, 3 * 16, 2, 2);
        var head = randn(2, 3 * 16, 2, 2);
        var (fused, channels) = fusion.Fuse(tail, head, new Random(7), experts: 3);
        Assert.Equal(3 * 4, channels.Length);
        for (int e = 0; e < 3; e++) Assert.Equal(4, channels.Count(c => c >= e * 16 && c < (e + 1) * 16));
        var (split, _) = fusion.FuseExperts(tail.chunk(3, 1), head.chunk(3, 1), new Random(7));
        Assert.True(Same(fused, cat(split, 1)));
        Assert.Throws<ArgumentException>(() => fusion.Fuse(tail, head, new Random(7), experts: 5));
    }

    /// <summary>The RIDE and ResLT configs run end to end from the CLI (stage I, then stage II with H2T), shortened by
    /// overrides.</summary>
    [Theory]
    [InlineData("ride/fmnist_stage1_ride.yaml", "ride/fmnist_stage2_ride_H2T.yaml", "ride_resnet8", "ride")]
    [InlineData("reslt/fmnist_stage1_reslt.yaml", "reslt/fmnist_stage2_reslt_H2T.yaml", "reslt_resnet8", "reslt")]
    public void MultiExpertConfigsTrainAndEvaluate(string stage1, string stage2, string backbone, string head)
    {
        var run = new MethodConfigRun(set.Path, dir.Path, backbone);
        // reweight_epoch 1 of 2: RIDE's DRW switch happens inside the short run.
        run.Run(stage1, stage2, head == "ride" ? ["loss.RIDE.reweight_epoch=1"] : []);
        var meta = Checkpoint.ReadMeta(run.StageOneCheckpoint);
        Assert.Equal(backbone, meta.Architecture);
        Assert.Equal(head, meta.Classifier);
        // The same stage-2 config swept over rho (its H2T value replaced by each member's).
        var sweep = Path.Combine(dir.Path, "sweep");
        MethodConfigRun.Cli(["sweep", "--config", MethodConfigRun.Config(stage2), .. run.Shorter,
            $"resume={run.StageOneCheckpoint}", "--rho", "0,0.5",
            "--val-per-class", "3", "--out", sweep]);
        foreach (var rho in new[] { "rho0", "rho0.5" })
            Assert.True(new RunFolder(Path.Combine(sweep, rho)).ReadMetrics().Completed, rho);
        Assert.Matches("\"shift_bn\":\\s*true", File.ReadAllText(Path.Combine(sweep, "rho0.5", "config.json")));
        // Stage II trained the classifier only: the stage-I backbone weights are unchanged.
        using var before = Checkpoint.Open(run.StageOneCheckpoint);
        using var after = Checkpoint.Open(Path.Combine(run.StageTwoFolder, "last.ckpt"));
        var w0 = before.Backbone.state_dict();
        foreach (var (name, w) in after.Backbone.state_dict())
            if (!name.Contains("running", StringComparison.Ordinal) && !name.Contains("num_batches",
                StringComparison.Ordinal))
                Assert.True(Same(w, w0[name]), name);
    }

    /// <summary>The same from flags alone, and a rho sweep over the RIDE backbone (per-expert fusion in the
    /// sweep).</summary>
    [Fact]
    public void RideRunsFromFlagsAndItsSweepFusesEveryExpert()
    {
        var s1 = Path.Combine(dir.Path, "flags");
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["stage1", "--dataset", "fashion-mnist", "--data", set.Path, "--imb-factor", "10",
            "--epochs", "2", "--backbone", "ride_resnet8",
            "--loss", "ride", "--drw", "1", "--mixup", "0", "--batch-size", "32", "--eval-every", "0", "--out", s1],
                console);
        Assert.True(rc == 0, console.Output);
        var m1 = new RunFolder(s1).ReadMetrics();
        Assert.True(m1.Completed);
        Assert.Equal("ride", Checkpoint.ReadMeta(Path.Combine(s1, "last.ckpt")).Classifier);
        console = new TestConsole().Width(200);
        var sweep = Path.Combine(dir.Path, "sweep");
        rc = CliApp.Run(["sweep", "--from", Path.Combine(s1, "last.ckpt"), "--rho", "0,0.25", "--val-per-class", "3",
            "--epochs", "1",
            "--batch-size", "32", "--out", sweep], console);
        Assert.True(rc == 0, console.Output);
        var rho0 = new RunFolder(Path.Combine(sweep, "rho0")).ReadMetrics();
        var rho25 = new RunFolder(Path.Combine(sweep, "rho0.25")).ReadMetrics();
        Assert.True(rho0.Completed && rho25.Completed);
        // Fusion changed what the classifier saw: the two members' training losses differ.
        Assert.NotEqual(rho0.Epochs[0].TrainLoss, rho25.Epochs[0].TrainLoss);

        // The pooled cache keeps one vector per expert (the map's channel groups pooled apart): where the views
        // coincide, its sweep is the exact one, member by member.
        var splits = StageTwoStart.Of(Path.Combine(s1, "last.ckpt"), set.Path,
            3).LoadSplits() with { TrainAugment = AugmentConfig.None };
        var two = new StageTwoConfig { Epochs = 1, Optim = new OptimConfig(Lr: 0.1, WeightDecay: 5e-4, BatchSize: 32),
            ShiftBn = false };
        var exact = StageTwoSweep.Run(Path.Combine(s1, "last.ckpt"), new SweepConfig(two, [0, 0.25], 3), splits,
            Path.Combine(dir.Path, "exact"),
            TorchSharp.torch.CPU, SilentObserver.Instance);
        var pooled = StageTwoSweep.Run(Path.Combine(s1, "last.ckpt"),
            new SweepConfig(two with { FeatureCache = FeatureCacheMode.Pooled }, [0, 0.25], 3),
            splits, Path.Combine(dir.Path, "pooled"), TorchSharp.torch.CPU, SilentObserver.Instance);
        foreach (var (e, p) in exact.Rows.Zip(pooled.Rows))
        {
            Assert.Equal(e.FinalTest!.Top1, p.FinalTest!.Top1, 1e-9);
            var a = SweepTests.State(Path.Combine(e.RunFolder, "last.ckpt"));
            var b = SweepTests.State(Path.Combine(p.RunFolder, "last.ckpt"));
            foreach (var (key, t) in a.Where(kv => kv.Key.StartsWith("head.", StringComparison.Ordinal)))
                Assert.True(t.to_type(TorchSharp.torch.ScalarType.Float64).allclose(b[key].to_type(
                    TorchSharp.torch.ScalarType.Float64), rtol: 1e-4, atol: 1e-5),
                    $"rho {e.Rho}: {key} differs");
        }
    }

    [Fact]
    public void ConfigsRefuseAnExpertCountOrLossThatDoesNotFitTheBackbone()
    {
        string Config(string f) => Path.Combine(DataTestFiles.RepoRoot, "configs", "methods", f);
        string[] shorter = [$"data_path={set.Path}", "imb_factor=10", "num_epochs=1", "batch_size=32"];
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["stage1", "--config", Config("ride/fmnist_stage1_ride.yaml"), .. shorter,
            "backbone=resnet8", "--out", Path.Combine(dir.Path, "a")], console);
        Assert.Equal(2, rc);
        Assert.Contains("num_experts", console.Output);
        console = new TestConsole().Width(200);
        rc = CliApp.Run(["stage1", "--config", Config("ride/fmnist_stage1_ride.yaml"), .. shorter, "backbone=resnet8",
            "num_experts=1", "--out", Path.Combine(dir.Path, "b")], console);
        Assert.Equal(2, rc);
        Assert.Contains("ride_resnet32", console.Output); // the RIDE loss says which backbone it needs
    }

    public void Dispose()
    {
        set.Dispose();
        dir.Dispose();
    }
}
