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
        Assert.Matches(@"feature maps\s+channels-last by default", console.Output);
        Assert.Matches(@"stage-II method\s+fusion feature-mixup: Balanced-MixUp", console.Output);
    }

    [Fact]
    public void CudaWithoutACudaBuildIsAClearUsageError()
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(["info", "--device", "cuda"], console);
        Assert.Equal(CliApp.UsageError, rc);
        Assert.Contains("CUDA is not available", console.Output);
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
}
