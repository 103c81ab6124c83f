using H2T.Runs;
using H2T.Cli;
using H2T.Training;
using Spectre.Console.Testing;
using H2T.Tests.Data;

namespace H2T.Tests.Training;

/// <summary>Runs a method's shipped stage-1 and stage-2 configs from the CLI on a tiny set, shortened by
/// overrides.</summary>
internal sealed class MethodConfigRun(string dataPath, string workDir, string backbone)
{
    public static string Config(string file) => Path.Combine(DataTestFiles.RepoRoot, "configs", "methods", file);

    /// <summary>The overrides that make a shipped config a seconds-long run on the tiny set.</summary>
    public string[] Shorter => [$"data_path={dataPath}", "imb_factor=10", "num_epochs=2", $"backbone={backbone}",
        "batch_size=32"];

    public string StageOneFolder => Path.Combine(workDir, "s1");
    public string StageTwoFolder => Path.Combine(workDir, "s2");
    public string StageOneCheckpoint => Path.Combine(StageOneFolder, "last.ckpt");

    /// <summary>Stage I from <paramref name="stage1"/>, then stage II from <paramref name="stage2"/> on its checkpoint;
    /// both must exit 0 and the stage-II run must complete with a test accuracy.</summary>
    public void Run(string stage1, string stage2, params string[] stageOneExtra)
    {
        Cli(["stage1", "--config", Config(stage1), .. Shorter, .. stageOneExtra, "--out", StageOneFolder]);
        Cli(["stage2", "--config", Config(stage2), .. Shorter, $"resume={StageOneCheckpoint}", "--out",
            StageTwoFolder]);
        var m = new RunFolder(StageTwoFolder).ReadMetrics();
        Assert.True(m.Completed);
        Assert.True(m.Final!.Top1 > 0);
    }

    /// <summary>Runs the CLI; asserts exit code 0 with the output as the message.</summary>
    public static void Cli(string[] args)
    {
        var console = new TestConsole().Width(200);
        var rc = CliApp.Run(args, console);
        Assert.True(rc == 0, console.Output);
    }
}
