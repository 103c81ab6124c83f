using H2T.Cli;
using H2T.Runtime;
using Spectre.Console.Testing;

namespace H2T.Tests.Cli;

public sealed class InfoCommandTests
{
    [Fact]
    public void InfoPrintsVersionsDeviceThreadsAndTheFix()
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["info", "--threads", "1"], console);
        Assert.Equal(0, rc);
        Assert.Contains("2.10.0", console.Output);
        Assert.Contains("0.107.0", console.Output);
        Assert.Matches(@"threads\s+1", console.Output);
        Assert.Matches(@"native fix\s+applied", console.Output);
        Assert.Matches(@"1x1 convolutions\s+(GEMM \(a matrix product over the channels\)|oneDNN convolution): ",
            console.Output);
        Assert.Matches(@"feature maps\s+channels-last by default", console.Output);
        Assert.Matches(@"stage-II method\s+fusion feature-mixup: Balanced-MixUp", console.Output);
    }

    [Fact]
    public void CudaWithoutACudaBuildIsAClearUsageError()
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["info", "--device", "cuda"], console);
        Assert.Equal(CliApp.UsageError, rc);
        var said = console.Output.ReplaceLineEndings("");
        Assert.Contains("CUDA is not available: this build references TorchSharp-cpu", said);
        Assert.Contains("H2T_TORCH_BACKEND=cuda ./h2t", said);
        Assert.Contains("untested", said);
        console = new TestConsole().Width(200);
        Assert.Equal(CliApp.UsageError, CliApp.Run(["info", "--device", "cuda:x"], console));
        Assert.Contains("expected cuda or cuda:N", console.Output);
    }

    /// <summary>The build switch: TorchBackend=cuda swaps TorchSharp-cpu for TorchSharp-cuda-linux in the library's
    /// references (MSBuild's own evaluation; restoring it needs the CUDA packages, which are not served here), and a
    /// backend that does not exist stops the build with what is expected.</summary>
    [Fact]
    public void TheCudaBuildSwitchSwapsTheTorchSharpPackage()
    {
        var project = Path.Combine(H2T.Tests.Data.DataTestFiles.RepoRoot, "src", "H2T.Core", "H2T.Core.csproj");
        string References(string backend)
        {
            var (rc, text) = CliRunner.Exec("dotnet", "msbuild", project, "-getItem:PackageReference",
                $"-p:TorchBackend={backend}", "-nologo");
            Assert.True(rc == 0, text);
            return text;
        }
        var cpu = References("cpu");
        Assert.Contains("\"TorchSharp-cpu\"", cpu);
        Assert.DoesNotContain("TorchSharp-cuda", cpu);
        var cuda = References("cuda");
        Assert.Contains("\"TorchSharp-cuda-linux\"", cuda);
        Assert.DoesNotContain("\"TorchSharp-cpu\"", cuda);
        var (code, output) = CliRunner.Exec("dotnet", "msbuild", project, "-t:H2TCheckTorchBackend",
            "-p:TorchBackend=rocm", "-nologo");
        Assert.NotEqual(0, code);
        Assert.Contains("TorchBackend=rocm: expected cpu (TorchSharp-cpu) or cuda", output);
    }

    [Theory]
    [InlineData("--threads", "0")]
    [InlineData("--device", "tpu")]
    [InlineData("--no-such-option", "1")]
    public void BadOptionsExitWithTwo(string option, string value)
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["info", option, value], console);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("error", console.Output, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Every command's --help renders: option texts with [key] in them once broke Spectre's markup
    /// parser.</summary>
    [Theory]
    [InlineData("info")] [InlineData("data")] [InlineData("demo")] [InlineData("stage1")] [InlineData(
        "stage2")] [InlineData("sweep")]
    [InlineData("tau-norm")] [InlineData("report")] [InlineData("import")] [InlineData("export")] [InlineData(
        "predict")]
    [InlineData("serve")] [InlineData("eval")] [InlineData("grid")]
    public void EveryCommandsHelpRenders(string command)
    {
        var (rc, output) = CliRunner.Run(command, "--help");
        Assert.True(rc == 0, output);
        Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("USAGE:", output);
    }
}
