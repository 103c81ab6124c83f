using System.Diagnostics;
using System.Security.Cryptography;
using H2T.Tests.Data;

namespace H2T.Tests.Interop;

/// <summary>
/// Debian's python3-torch / python3-torchvision, when installed (<c>.ci/run</c> installs them): the real producer of
/// PyTorch files for fixtures too large to commit. Without them the tests that need them are reported as skipped with
/// the reason; with <c>H2T_REQUIRE_PYTORCH=1</c> (CI) they run and fail instead, so a missing install cannot hide.
/// </summary>
public static class PyTorchFixtures
{
    static readonly string[] SampleImages = ["test/airplane/0000.jpg", "test/cat/0000.jpg"];

    public const string Python = "/usr/bin/python3";

    public static string Folder => Path.Combine(DataTestFiles.RepoRoot, "tests", "H2T.Tests", "Interop", "Fixtures");
    public static string Script => Path.Combine(Folder, "make_pytorch_fixtures.py");
    public static string Committed(string name) => Path.Combine(Folder, name);

    static readonly Lazy<string?> Missing = new(() =>
    {
        if (!File.Exists(Python)) return $"{Python} is absent";
        var (rc, _, err) = Run(["-c", "import torch, torchvision, PIL"]);
        return rc == 0 ? null :
            $"{Python} cannot import torch, torchvision and PIL ({err.Trim().Split('\n').LastOrDefault()})";
    });

    /// <summary>Why the PyTorch tests cannot run here, or null when they can.</summary>
    public static string? WhyNot => Environment.GetEnvironmentVariable("H2T_REQUIRE_PYTORCH") == "1" ? null :
        Missing.Value;

    public static (int Rc, string Out, string Err) Run(IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true,
            UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    static readonly Lock Gate = new();

    /// <summary>
    /// torchvision's resnet50, resnext50_32x4d and resnet152 state dicts and their logits on two real CIFAR images
    /// (resized to 224), written by the fixture script once per script version into the temp folder (~440 MB, ~25 s).
    /// </summary>
    public static string TorchvisionFolder() => Written(Script, "h2t-torchvision-fixtures", ["--torchvision"]);

    /// <summary>torchvision's convnext_tiny and a micro ConvNeXt (random init), their state dicts and their maps,
    /// pre-logits and logits on the same two images, by make_convnext_fixtures.py (~120 MB, ~15 s).</summary>
    public static string ConvNeXtFolder() =>
        Written(Path.Combine(Folder, "make_convnext_fixtures.py"), "h2t-convnext-fixtures", []);

    /// <summary>torchvision's vit_b_16 and vit_b_32 state dicts and their class-token features on the same images
    /// (make_vit_layout_fixtures.py --torchvision; ~700 MB, ~20 s).</summary>
    public static string TorchvisionVitFolder() => Written(Path.Combine(Folder, "make_vit_layout_fixtures.py"),
        "h2t-torchvision-vit-fixtures", ["--torchvision"]);

    /// <summary>What <paramref name="script"/> writes into a folder named by its hash, made once per script version
    /// (in a temporary folder moved into place when complete).</summary>
    static string Written(string script, string stem, string[] args)
    {
        lock (Gate)
        {
            var hash = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(script)))[..12];
            var dir = Path.Combine(Path.GetTempPath(), $"{stem}-{hash}");
            if (File.Exists(Path.Combine(dir, ".complete"))) return dir;
            var temp = dir + $".{Environment.ProcessId}.tmp";
            Directory.CreateDirectory(temp);
            var images = SampleImages.Select(i => Path.Combine(DataTestFiles.CifarJpgSample, i));
            var (rc, _, err) = Run([script, .. args, temp, .. images]);
            if (rc != 0) throw new InvalidOperationException($"{Path.GetFileName(script)} failed: {err}");
            File.WriteAllText(Path.Combine(temp, ".complete"), hash);
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            Directory.Move(temp, dir);
            return dir;
        }
    }
}

/// <summary>A test that needs Debian's python3-torch and python3-torchvision (see <see
/// cref="PyTorchFixtures"/>).</summary>
public sealed class RequiresPyTorchFactAttribute : FactAttribute
{
    public RequiresPyTorchFactAttribute()
    {
        if (PyTorchFixtures.WhyNot is { } why) Skip =
            $"not run: needs Debian's python3-torch and python3-torchvision: {why}";
    }
}

/// <summary>A theory that needs Debian's python3-torch and python3-torchvision.</summary>
public sealed class RequiresPyTorchTheoryAttribute : TheoryAttribute
{
    public RequiresPyTorchTheoryAttribute()
    {
        if (PyTorchFixtures.WhyNot is { } why) Skip =
            $"not run: needs Debian's python3-torch and python3-torchvision: {why}";
    }
}
