using System.Globalization;
using H2T.Data;

namespace H2T.Inference;

/// <summary>One image to classify: its path, how to show it, and its label when one is known.</summary>
public sealed record PredictionInput(string Path, string Display, int? Label);

/// <summary>
/// What <c>h2t predict PATH...</c> reads: an image file (.jpg/.jpeg/.png), a folder (searched recursively, ordinal
/// order), or a list file (<c>relative/path [label]</c> lines, paths relative to the list's folder). A known label
/// comes from the list, or from a folder layout <c>.../&lt;class name&gt;/file.jpg</c> whose parent folder is one of
/// the model's classes. Enumerated lazily, so 100k files are never all in memory at once beyond their names.
/// </summary>
public static class PredictionInputs
{
    static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png"];

    public static bool IsImage(string path) =>
        ImageExtensions.Contains(System.IO.Path.GetExtension(path).ToLowerInvariant());

    /// <summary>Checks every argument up front (a missing path or an empty folder fails before any work), then
    /// streams the inputs.</summary>
    public static IEnumerable<PredictionInput> Resolve(IReadOnlyList<string> arguments,
        IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        if (arguments.Count == 0) throw new ArgumentException("no input: pass image files, folders or list files");
        foreach (var a in arguments)
        {
            if (Directory.Exists(a))
            {
                if (!Folder(a).Any()) throw new DataFormatException(
                    $"{a}: no .jpg/.jpeg/.png images in this folder or below");
            }
            else if (!File.Exists(a)) throw new FileNotFoundException($"{a}: no such file or folder", a);
        }
        return Stream(arguments, classNames);
    }

    static IEnumerable<PredictionInput> Stream(IReadOnlyList<string> arguments, IReadOnlyList<string> classNames)
    {
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < classNames.Count; c++) byName.TryAdd(classNames[c], c);
        foreach (var a in arguments)
        {
            if (Directory.Exists(a))
            {
                foreach (var f in Folder(a)) yield return new(f, f, LabelOfFolder(f, byName));
            }
            else if (IsImage(a)) yield return new(a, a, LabelOfFolder(a, byName));
            else foreach (var item in List(a, classNames.Count)) yield return item;
        }
    }

    static int? LabelOfFolder(string file, Dictionary<string, int> byName) =>
        System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file))) is { } parent &&
            byName.TryGetValue(parent, out int c) ? c : null;

    static IEnumerable<string> Folder(string root)
    {
        // Sorted per folder (ordinal), folders before deeper files: a stable order without listing the whole tree
        // first.
        var files = Directory.EnumerateFiles(root).Where(IsImage).Order(StringComparer.Ordinal);
        foreach (var f in files) yield return f;
        foreach (var d in Directory.EnumerateDirectories(root).Where(d =>
            !System.IO.Path.GetFileName(d).StartsWith('.')).Order(StringComparer.Ordinal))
            foreach (var f in Folder(d)) yield return f;
    }

    static IEnumerable<PredictionInput> List(string listPath, int numClasses)
    {
        var root = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(listPath))!;
        var name = System.IO.Path.GetFileName(listPath);
        int lineNo = 0, entries = 0;
        foreach (var raw in File.ReadLines(listPath))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int? label = null;
            var path = line;
            int cut = line.LastIndexOfAny([' ', '\t']);
            // A whole number at the end is the label; otherwise the whole line is the path (it may hold spaces).
            if (cut > 0 && int.TryParse(line.AsSpan(cut + 1), NumberStyles.None, CultureInfo.InvariantCulture,
                out int l))
            {
                if (l >= numClasses)
                    throw new DataFormatException(
                        $"{listPath} line {lineNo}: label {l} is out of range: the model has classes " +
                        $"0..{numClasses - 1}");
                label = l;
                path = line[..cut].TrimEnd();
            }
            entries++;
            yield return new(System.IO.Path.Combine(root, path), $"{path} ({name} line {lineNo})", label);
        }
        if (entries == 0) throw new DataFormatException(
            $"{listPath}: no entries: expected 'relative/path [label]' lines (or pass an image file or a folder)");
    }
}
