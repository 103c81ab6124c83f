using System.Diagnostics;
using H2T.Models;
using H2T.Runtime;
using H2T.Settings;
using H2T.Tests.Data;
using static TorchSharp.torch;

namespace H2T.Tests.Models;

/// <summary>
/// Pointwise convolutions as a matrix product (where oneDNN's 1x1 convolution kills the process) and the probe that
/// decides, per machine, which way they run.
/// </summary>
public sealed class PointwiseTests
{
    public PointwiseTests() => TorchRuntime.Initialize(2);

    [Theory]
    [InlineData(1, true, false)]
    [InlineData(2, true, false)]
    [InlineData(2, false, false)]
    [InlineData(1, false, true)]
    [InlineData(2, true, true)]
    public void TheMatrixProductIsTheConvolutionWithItsGradients(int stride, bool channelsLast, bool bf16)
    {
        // The reference is libtorch's own convolution in float64, which oneDNN does not run: the path under suspicion
        // is not the judge. Odd sizes check the subsampling's edge (ceil(9 / 2) = 5 outputs).
        manual_seed(3);
        using var scope = NewDisposeScope();
        var x64 = randn(3, 24, 9, 9, dtype: ScalarType.Float64);
        var w64 = randn(40, 24, 1, 1, dtype: ScalarType.Float64);
        var b64 = randn(40, dtype: ScalarType.Float64);
        var type = bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        var x = x64.to_type(type);
        if (channelsLast) x = MemoryLayout.ToChannelsLast(x);
        x = x.detach().requires_grad_(true);
        var w = w64.to_type(type).detach().requires_grad_(true);
        var b = b64.to_type(type).detach().requires_grad_(true);
        var y = Pointwise.Conv(x, w, b, stride);
        Assert.Equal(new long[] { 3, 40, (9 + stride - 1) / stride, (9 + stride - 1) / stride }, y.shape);
        Assert.Equal(channelsLast, MemoryLayout.IsChannelsLast(y));
        var upstream = randn(y.shape, dtype: ScalarType.Float64);
        (y.to_type(ScalarType.Float64) * upstream).sum().backward();

        var rx = x64.detach().requires_grad_(true);
        var rw = w64.detach().requires_grad_(true);
        var rb = b64.detach().requires_grad_(true);
        var reference = nn.functional.conv2d(rx, rw, rb, strides: [stride, stride]);
        (reference * upstream).sum().backward();

        var tolerance = bf16 ? 3e-2 : 1e-5;
        void Close(Tensor actual, Tensor expected, string what)
        {
            var error =
                (actual.to_type(ScalarType.Float64) - expected).norm().item<double>() / expected.norm().item<double>();
            Assert.True(error < tolerance,
                $"{what}: relative error {error:E2} against the float64 convolution (tolerance {tolerance:E0})");
        }
        Close(y, reference, "output");
        Close(x.grad!, rx.grad!, "input gradient");
        Close(w.grad!, rw.grad!, "weight gradient");
        Close(b.grad!, rb.grad!, "bias gradient");
    }

    [Fact]
    public void OnlyUnpaddedUngroupedOneByOneConvolutionsArePointwise()
    {
        using var pointwise = nn.Conv2d(8, 16, 1, stride: 2, bias: false);
        using var threeByThree = nn.Conv2d(8, 16, 3, padding: 1);
        using var padded = nn.Conv2d(8, 16, 1, padding: 1);
        using var grouped = nn.Conv2d(8, 16, 1, groups: 2);
        Assert.True(Pointwise.IsPointwise(pointwise));
        Assert.False(Pointwise.IsPointwise(threeByThree));
        Assert.False(Pointwise.IsPointwise(padded));
        Assert.False(Pointwise.IsPointwise(grouped));
    }

    [Fact]
    public async Task TheProbeDecidesFromARealChildAndItsAnswerIsKeptPerMachine()
    {
        using var dir = new TempDir();
        var cache = Path.Combine(dir.Path, "pointwise-probe.json");
        // The child is this test host re-entered with the library as its startup hook: no h2t.dll is involved.
        var probe = Pointwise.ProbeCommand();
        Assert.NotNull(probe);
        Assert.DoesNotContain(probe.ArgumentList, a => a.EndsWith("h2t.dll", StringComparison.Ordinal));
        Assert.Equal(typeof(Pointwise).Assembly.Location, probe.Environment["DOTNET_STARTUP_HOOKS"]);

        // What the child itself does on this machine: exit 0 with the pass line, or die (SIGFPE on an affected one).
        using var child = Process.Start(Pointwise.ProbeCommand()!)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        _ = child.StandardError.ReadToEndAsync();
        using (var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
            await child.WaitForExitAsync(limit.Token);
        var convolutionRuns = child.ExitCode == 0 && (await stdout).Contains(Pointwise.ProbePassed,
            StringComparison.Ordinal);

        var first = Pointwise.Decide(null, cache, Pointwise.ProbeCommand());
        Assert.Equal(!convolutionRuns, first.Gemm);
        Assert.Contains(convolutionRuns ? "the probe ran" : "killed the probe", first.Why, StringComparison.Ordinal);
        var record = Assert.Single(Pointwise.ReadCache(cache));
        Assert.Equal(CpuFeatures.Host.Key, record.Cpu);
        Assert.Equal(Environment.MachineName, record.Machine);
        Assert.Equal(first.Gemm, record.Gemm);

        // The second decision reads the record: no child (none could be started from a missing program).
        var second = Pointwise.Decide(null, cache, new ProcessStartInfo(Path.Combine(dir.Path, "missing", "program")));
        Assert.Equal(first.Gemm, second.Gemm);
        Assert.Contains($"probed {record.Probed:yyyy-MM-dd}, {cache}", second.Why, StringComparison.Ordinal);

        // Another build's record does not count; without a process to re-enter, the convolution is kept and the way
        // out named.
        var stale = Path.Combine(dir.Path, "stale.json");
        File.WriteAllText(stale, File.ReadAllText(cache).Replace(record.Library, "another-build",
            StringComparison.Ordinal));
        var unprobed = Pointwise.Decide(null, stale, probe: null);
        Assert.False(unprobed.Gemm);
        Assert.Contains($"set {Pointwise.EnvironmentVariable}=gemm", unprobed.Why, StringComparison.Ordinal);

        // A child that dies without starting the probe (startup hooks off, another host) says nothing about oneDNN:
        // not taken as a crash, not cached.
        var none = Path.Combine(dir.Path, "none.json");
        var sh = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-c", "kill -FPE $$" }) sh.ArgumentList.Add(a);
        var quiet = Pointwise.Decide(null, none, sh);
        Assert.False(quiet.Gemm);
        Assert.Contains("did not start the probe", quiet.Why, StringComparison.Ordinal);
        Assert.Empty(Pointwise.ReadCache(none));
        // Nor does a program that cannot be started.
        var missing = Pointwise.Decide(null, none, new ProcessStartInfo(Path.Combine(dir.Path, "missing", "program")));
        Assert.False(missing.Gemm);
        Assert.Contains("could not be started", missing.Why, StringComparison.Ordinal);
        Assert.Empty(Pointwise.ReadCache(none));

        // The environment variable wins, and a wrong value is named.
        Assert.True(Pointwise.Decide("gemm", cache, null).Gemm);
        Assert.False(Pointwise.Decide("conv", cache, null).Gemm);
        var e = Assert.Throws<ConfigException>(() => Pointwise.Decide("fast", cache, null));
        Assert.Contains("H2T_POINTWISE=fast: expected gemm or conv", e.Message, StringComparison.Ordinal);
    }
}
