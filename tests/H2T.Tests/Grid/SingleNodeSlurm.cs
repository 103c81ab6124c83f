using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using H2T.Data;
using H2T.Tests.Cli;
using H2T.Tests.Data;

namespace H2T.Tests.Grid;

/// <summary>
/// A real one-node Slurm cluster on this machine for one test: munged with its own key, slurmctld and slurmd from
/// Debian's slurm-wlm 22.05, loopback only, run as root (no systemd, no cgroups: proctrack/linuxproc), a config
/// written here into a private folder. Without root or the daemons the test is skipped with the reason; with
/// H2T_REQUIRE_SLURM=1 (CI installs them) it runs and fails instead.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SingleNodeSlurm : IDisposable
{
    public const string Slurmctld = "/usr/sbin/slurmctld", Slurmd = "/usr/sbin/slurmd", Munged = "/usr/sbin/munged";

    /// <summary>Why this machine cannot run the cluster, or null.</summary>
    public static string? Missing =>
        !File.Exists(Slurmctld) || !File.Exists(Slurmd) || !File.Exists(Munged) || !File.Exists("/usr/bin/sbatch")
            ? $"needs Debian's slurm-wlm and munge ({Slurmctld}, {Slurmd}, {Munged}); sudo apt-get install -y " +
                $"slurm-wlm munge"
            : Environment.UserName != "root" ? "needs root (slurmd runs the jobs as SlurmUser=root here)" : null;

    readonly TempDir dir = new();
    readonly string? previousConf = Environment.GetEnvironmentVariable("SLURM_CONF");

    public string Conf { get; }
    public string Folder => dir.Path;
    public string Node { get; }

    public SingleNodeSlurm(int cpus = 2, int memoryMb = 4000)
    {
        File.SetUnixFileMode(dir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = dir.Write("munge.key", RandomNumberGenerator.GetBytes(1024));
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var socket = dir.File("munge.socket");
        Exec(Munged, "--force", $"--key-file={key}", $"--socket={socket}", $"--pid-file={dir.File("munged.pid")}",
            $"--log-file={dir.File("munged.log")}", $"--seed-file={dir.File("munge.seed")}", "--num-threads=2");
        Node = Exec("hostname", "-s").Trim();
        Directory.CreateDirectory(dir.File("state"));
        Directory.CreateDirectory(dir.File("spool"));
        var conf = string.Join('\n',
            "ClusterName=h2ttest",
            $"SlurmctldHost={Node}(127.0.0.1)",
            "SlurmctldPort=16817",
            "SlurmdPort=16818",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            $"AuthInfo=socket={socket}",
            $"StateSaveLocation={dir.File("state")}",
            $"SlurmdSpoolDir={dir.File("spool")}",
            $"SlurmctldPidFile={dir.File("slurmctld.pid")}",
            $"SlurmdPidFile={dir.File("slurmd.pid")}",
            $"SlurmctldLogFile={dir.File("slurmctld.log")}",
            $"SlurmdLogFile={dir.File("slurmd.log")}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=30",
            string.Create(CultureInfo.InvariantCulture,
                $"NodeName={Node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memoryMb} State=UNKNOWN"),
            $"PartitionName=debug Nodes={Node} Default=YES MaxTime=INFINITE State=UP",
            "");
        Conf = dir.Write("slurm.conf", System.Text.Encoding.ASCII.GetBytes(conf));
        // sbatch, squeue and scontrol (here and in the jobs, which inherit the environment) find this cluster by it.
        Environment.SetEnvironmentVariable("SLURM_CONF", Conf);
        Exec(Slurmctld, "-f", Conf);
        Exec(Slurmd, "-f", Conf);
        var clock = Stopwatch.StartNew();
        string state = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            state = TryExec("sinfo", "-h", "-N", "-o", "%T").Output.Trim();
            if (state == "idle") return;
            Thread.Sleep(250);
        }
        throw new InvalidOperationException(
            $"the node did not come up (sinfo: '{state}'); slurmctld.log: {Tail("slurmctld.log")}; slurmd.log: " +
            $"{Tail("slurmd.log")}");
    }

    public string Tail(string log)
    {
        var path = dir.File(log);
        if (!File.Exists(path)) return "(none)";
        var lines = File.ReadAllLines(path);
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 15)));
    }

    /// <summary>Runs a command; its stdout, or an exception with everything it printed.</summary>
    public static string Exec(string file, params string[] args)
    {
        var (rc, output) = TryExec(file, args);
        if (rc != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: exit code {rc}: {output}");
        return output;
    }

    public static (int Rc, string Output) TryExec(string file, params string[] args) => CliRunner.Exec(file, args);

    public void Dispose()
    {
        TryExec("scancel", "--user=root");
        foreach (var pid in new[] { "slurmd.pid", "slurmctld.pid", "munged.pid" })
        {
            var file = dir.File(pid);
            if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), out var id)) continue;
            try
            {
                using var p = Process.GetProcessById(id);
                p.Kill();
                p.WaitForExit(10_000);
            }
            catch (ArgumentException) { }
            catch (InvalidOperationException) { }
        }
        Environment.SetEnvironmentVariable("SLURM_CONF", previousConf);
        dir.Dispose();
    }
}

/// <summary>Real Fashion-MNIST images, fewer of them: the first images of each class of Debian's
/// dataset-fashion-mnist, written back as the IDX .gz files it ships, so the grid trains on the real data in
/// seconds.</summary>
public sealed class FashionMnistSubset : IDisposable
{
    public const string Source = "/usr/share/datasets/fashion-mnist";
    readonly TempDir dir = new();

    public FashionMnistSubset(int perClassTrain, int perClassTest)
    {
        Write("train", perClassTrain);
        Write("t10k", perClassTest);
    }

    public string Path => dir.Path;

    void Write(string prefix, int perClass)
    {
        var (pixels, count, rows, cols) = Idx.ReadImages(System.IO.Path.Combine(Source,
            $"{prefix}-images-idx3-ubyte.gz"));
        var labels = Idx.ReadLabels(System.IO.Path.Combine(Source, $"{prefix}-labels-idx1-ubyte.gz"));
        var taken = new int[10];
        var keep = new List<int>();
        for (int i = 0; i < count; i++)
            if (taken[labels[i]]++ < perClass) keep.Add(i);
        int size = rows * cols;
        var images = DataTestFiles.IdxImages(keep.Count, rows, cols, k => pixels[keep[k / size] * size + k % size]);
        dir.Write($"{prefix}-images-idx3-ubyte.gz", DataTestFiles.Gzip(images));
        dir.Write($"{prefix}-labels-idx1-ubyte.gz",
            DataTestFiles.Gzip(DataTestFiles.IdxLabels(keep.Select(i => labels[i]).ToArray())));
    }

    public void Dispose() => dir.Dispose();
}
