using System.Diagnostics;
using Spectre.Console;

namespace H2T.Cli;

/// <summary>
/// Gets the default dataset on a fresh Debian machine: Fashion-MNIST is the Debian package dataset-fashion-mnist.
/// As root we install it; otherwise we say the one command to run.
/// </summary>
internal static class DatasetInstaller
{
    public const string FashionMnistDir = "/usr/share/datasets/fashion-mnist";
    static readonly string[] Files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];

    public static bool FashionMnistPresent(string dir = FashionMnistDir) => Files.All(f => File.Exists(Path.Combine(dir,
        f)));

    public static void EnsureFashionMnist(IAnsiConsole console)
    {
        if (FashionMnistPresent()) return;
        bool root = Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root";
        bool apt = File.Exists("/usr/bin/apt-get");
        if (!root || !apt)
            throw new UsageException(
                $"Fashion-MNIST is not in {FashionMnistDir}. Install it with: sudo apt-get install -y " +
                $"dataset-fashion-mnist " +
                                     "(or pass --data DIR holding the four IDX .gz files)");
        console.MarkupLine(
            $"[yellow]Fashion-MNIST not found in {FashionMnistDir}: installing the Debian package " +
            $"dataset-fashion-mnist ...[/]");
        if (!RunApt("install -y -q dataset-fashion-mnist"))
        {
            RunApt("update -q");
            if (!RunApt("install -y -q dataset-fashion-mnist"))
                throw new UsageException(
                    "apt-get could not install dataset-fashion-mnist; install it by hand or pass --data DIR");
        }
        if (!FashionMnistPresent()) throw new UsageException(
            $"dataset-fashion-mnist installed but {FashionMnistDir} lacks the IDX files");
    }

    static bool RunApt(string args)
    {
        var psi = new ProcessStartInfo("apt-get", args) { UseShellExecute = false };
        psi.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }
}
