using System.Text.RegularExpressions;
using H2T.Tests.Data;

namespace H2T.Tests.Cli;

/// <summary>Every command's --help names its manual pages, and they exist.</summary>
public sealed partial class HelpTests
{
    [Theory]
    [InlineData("info")]
    [InlineData("data")]
    [InlineData("demo")]
    [InlineData("stage1")]
    [InlineData("stage2")]
    [InlineData("sweep")]
    [InlineData("tau-norm")]
    [InlineData("report")]
    [InlineData("import")]
    [InlineData("export")]
    [InlineData("predict")]
    [InlineData("serve")]
    [InlineData("eval")]
    [InlineData("grid")]
    public void EachCommandsHelpPointsToPagesThatExist(string command)
    {
        var (rc, output) = CliRunner.Run(command, "--help");
        Assert.Equal(0, rc);
        // The console wraps long words at their hyphens: "#h2t-" at a line's end continues on the next.
        var flat = Regex.Replace(Regex.Replace(output, @"-\s*\n\s*", "-"), @"\s+", " ");
        var manual = ManualLine().Match(flat);
        Assert.True(manual.Success, $"h2t {command} --help names no manual page:\n{output}");
        var pages = manual.Groups[1].Value.Split(", ");
        Assert.Contains($"docs/commands.md#h2t-{command}", pages);
        foreach (var page in pages)
        {
            var (file, anchor) = page.Split('#') is [var f, var a] ? (f, a) : (page, null);
            var path = Path.Combine(DataTestFiles.RepoRoot, file);
            Assert.True(File.Exists(path), $"h2t {command} --help: {file} does not exist");
            if (anchor is not null)
                Assert.Contains($"## h2t {command}", File.ReadAllText(path), StringComparison.Ordinal);
        }
    }

    [GeneratedRegex(@"Manual: ((?:[\w./-]+(?:#[\w-]+)?)(?:, [\w./-]+(?:#[\w-]+)?)*)(?=\s|$)")]
    private static partial Regex ManualLine();
}
