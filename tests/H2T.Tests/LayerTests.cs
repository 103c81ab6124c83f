using System.Reflection;
using System.Text.RegularExpressions;
using H2T.Tests.Data;

namespace H2T.Tests;

/// <summary>
/// The layers of docs/architecture.md, kept true: a namespace may use the namespaces above it in
/// <see cref="Layers"/>, never one below; each assembly references only the assemblies and packages of its concern.
/// Project references already stop an assembly from using one it does not reference; this test also holds the
/// folders inside H2T.Core to their order, and the core to having no web, plots or ONNX.
/// </summary>
public sealed partial class LayerTests
{
    /// <summary>Top to bottom, each with the assembly that holds it.</summary>
    internal static readonly (string Layer, string Assembly)[] Layers =
    [
        ("Settings", "H2T.Core"), ("Runtime", "H2T.Core"), ("Evaluation", "H2T.Core"), ("Data", "H2T.Core"),
        ("Models", "H2T.Core"), ("Losses", "H2T.Core"), ("Fusion", "H2T.Core"), ("Interop", "H2T.Core"),
        ("Runs", "H2T.Core"), ("Configuration", "H2T.Core"), ("Inference", "H2T.Core"), ("Training", "H2T.Core"),
        ("Onnx", "H2T.Onnx"), ("Reporting", "H2T.Reporting"), ("Serving", "H2T.Serving"), ("Grid", "H2T.Grid"),
        ("Fit", "H2T.Fit"), ("Cli", "h2t"),
    ];

    /// <summary>What each assembly may reference, beyond the .NET base library and TorchSharp.</summary>
    static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["H2T.Core"] = ["TorchSharp", "TorchSharp.PyBridge", "Razorvine.Pickle", "YamlDotNet", "SkiaSharp"],
        ["H2T.Onnx"] = ["H2T.Core", "Google.Protobuf", "OnnxSharp", "Microsoft.ML.OnnxRuntime"],
        ["H2T.Reporting"] = ["H2T.Core", "ScottPlot", "SkiaSharp"],
        ["H2T.Serving"] = ["H2T.Core", "H2T.Reporting", "Microsoft.AspNetCore*", "Microsoft.Extensions*", "Prometheus*",
            "Microsoft.OpenApi"],
        ["H2T.Grid"] = ["H2T.Core", "H2T.Reporting"],
        ["H2T.Fit"] = ["H2T.Core", "H2T.Onnx", "H2T.Reporting"],
    };

    [Fact]
    public void NoNamespaceUsesALayerBelowIt()
    {
        var violations = new List<string>();
        foreach (var (layer, assembly) in Layers)
        {
            var folder = assembly == "h2t" ? Path.Combine("src", "H2T.Cli")
                : assembly == "H2T.Core" ? Path.Combine("src", "H2T.Core", layer) : Path.Combine("src", assembly);
            var dir = Path.Combine(DataTestFiles.RepoRoot, folder);
            Assert.True(Directory.Exists(dir), $"{folder}: the layer's folder is missing");
            foreach (var file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
                         .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}",
                             StringComparison.Ordinal)))
                violations.AddRange(Below(layer, File.ReadAllText(file))
                    .Select(used =>
                        $"{Path.GetRelativePath(DataTestFiles.RepoRoot, file)}: {layer} uses H2T.{used}, a layer " +
                        $"below it"));
        }
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void TheCheckSeesAnUpwardUseInEverySpelling()
    {
        Assert.Equal(["Training"], Below("Models", "using H2T.Training;\nnamespace H2T.Models;"));
        Assert.Equal(["Serving"], Below("Runs",
            "namespace H2T.Runs;\nclass A { object x = H2T.Serving.ClassifierHost.Run; }"));
        Assert.Equal(["Reporting"], Below("Data", "using static H2T.Reporting.PlotFile;"));
        // Strings and comments are not uses: the core names the ONNX package it looks for, and says why in prose.
        Assert.Empty(Below("Runtime", "// H2T.Onnx adds ONNX Runtime\nconst string A = \"H2T.Onnx\";"));
        Assert.Empty(Below("Training", "using H2T.Models;\nusing H2T.Settings;"));
    }

    [Theory]
    [InlineData("H2T.Core")]
    [InlineData("H2T.Onnx")]
    [InlineData("H2T.Reporting")]
    [InlineData("H2T.Serving")]
    [InlineData("H2T.Grid")]
    [InlineData("H2T.Fit")]
    public void EachAssemblyReferencesOnlyItsConcern(string name)
    {
        var assembly = Assembly.Load(name);
        var extra = assembly.GetReferencedAssemblies().Select(a => a.Name!)
            .Where(r => !r.StartsWith("System", StringComparison.Ordinal) && !r.StartsWith("Microsoft.Win32",
                StringComparison.Ordinal)
                && r is not "netstandard" and not "mscorlib")
            .Where(r => !Allowed[name].Append("TorchSharp") // every package computes with TorchSharp's tensors
                .Any(a => a.EndsWith('*') ? r.StartsWith(a[..^1], StringComparison.Ordinal) : r == a))
            .ToList();
        Assert.True(extra.Count == 0, $"{name} references {string.Join(", ", extra)}, outside its concern");
    }

    /// <summary>The H2T layers <paramref name="source"/> uses that lie below <paramref name="layer"/>.</summary>
    internal static List<string> Below(string layer, string source)
    {
        var rank = Layers.Select((l, i) => (l.Layer, i)).ToDictionary(x => x.Layer, x => x.i);
        var code = CommentsAndStrings().Replace(source, " ");
        return [.. Uses().Matches(code).Select(m => m.Groups[1].Value)
            .Where(used => used != layer && rank.TryGetValue(used, out var r) && r > rank[layer]).Distinct()];
    }

    // Line and block comments, then verbatim, raw and regular string literals (one line each).
    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|@""(?:[^""]|"""")*""|""""""[\s\S]*?""""""|""(?:\\.|[^""\\\n])*""",
        RegexOptions.Singleline)]
    private static partial Regex CommentsAndStrings();

    [GeneratedRegex(@"(?<![\w.])H2T\.([A-Z][A-Za-z]*)\b")]
    private static partial Regex Uses();
}
