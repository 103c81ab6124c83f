namespace H2T.MlNetPeer;

/// <summary>Input the user got wrong: the message names the file (and line) and what was expected. Exit code 2.
/// </summary>
public sealed class InputException(string message) : Exception(message);

/// <summary>One labelled image, and where it was listed (for messages).</summary>
public sealed record LabelledImage(string Path, string Label, string Source);

/// <summary>One row of classes.csv: the class's name and its group (head, medium or tail).</summary>
public sealed record ClassInfo(string Name, string Group);

/// <summary>
/// Reads the split as <c>h2t fit</c> writes it (CSV files of <c>path,label</c>, classes.csv of
/// <c>class,train,val,test,group</c>) or as a folder <c>ROOT/train/CLASS/*</c> and <c>ROOT/test/CLASS/*</c>.
/// </summary>
public static class LabelledImages
{
    static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"];
    static readonly string[] Groups = ["head", "medium", "tail"];

    /// <summary>Reads a <c>path,label</c> CSV; every listed file must exist.</summary>
    public static List<LabelledImage> ReadCsv(string file)
    {
        var rows = ReadTable(file, ["path", "label"]);
        var images = new List<LabelledImage>(rows.Count);
        foreach (var (line, fields) in rows)
        {
            string where = $"{file}:{line}";
            string path = fields[0], label = fields[1];
            if (path.Length == 0 || label.Length == 0)
                throw new InputException($"{where}: empty path or label (expected path,label)");
            if (!Path.IsPathRooted(path))
                path = Path.GetFullPath(path, Directory.GetParent(Path.GetFullPath(file))!.FullName);
            if (!File.Exists(path)) throw new InputException($"{where}: image {path} does not exist");
            images.Add(new LabelledImage(path, label, where));
        }
        if (images.Count == 0) throw new InputException($"{file}: no rows after the header path,label");
        return images;
    }

    /// <summary>Reads <c>ROOT/SPLIT/CLASS/*</c>: every image file under each class folder, in name order.</summary>
    public static List<LabelledImage> ReadFolder(string root, string split)
    {
        string dir = Path.Combine(root, split);
        if (!Directory.Exists(dir)) throw new InputException($"{dir}: folder not found (expected {split}/CLASS/*)");
        var images = new List<LabelledImage>();
        foreach (var classDir in Directory.GetDirectories(dir).Order(StringComparer.Ordinal))
        {
            string label = Path.GetFileName(classDir);
            images.AddRange(Directory.EnumerateFiles(classDir)
                .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal)
                .Select(f => new LabelledImage(f, label, f)));
        }
        if (images.Count == 0)
            throw new InputException($"{dir}: no images in class folders (expected {split}/CLASS/*)");
        return images;
    }

    /// <summary>
    /// The first image that ML.NET's image loader (<see cref="Microsoft.ML.Data.MLImage"/>) cannot decode, with its
    /// error; null when all decode. Called only after a failed run, since it decodes every image once more.
    /// </summary>
    public static (LabelledImage Image, string Error)? FirstUndecodable(IEnumerable<LabelledImage> images)
    {
        foreach (var image in images)
        {
            try
            {
                using var decoded = Microsoft.ML.Data.MLImage.CreateFromFile(image.Path);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
            {
                return (image, e.Message);
            }
        }
        return null;
    }

    /// <summary>Reads classes.csv (<c>class,train,val,test,group</c>, group one of head, medium, tail).</summary>
    public static List<ClassInfo> ReadClasses(string file)
    {
        var rows = ReadTable(file, ["class", "train", "val", "test", "group"]);
        var classes = new List<ClassInfo>(rows.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (line, fields) in rows)
        {
            string where = $"{file}:{line}";
            string name = fields[0], group = fields[4].ToLowerInvariant();
            if (name.Length == 0) throw new InputException($"{where}: empty class name");
            if (!Groups.Contains(group))
                throw new InputException($"{where}: group '{fields[4]}' of class {name} is not head, medium or tail");
            if (!seen.Add(name)) throw new InputException($"{where}: class {name} is listed twice");
            classes.Add(new ClassInfo(name, group));
        }
        if (classes.Count == 0) throw new InputException($"{file}: no rows after the header");
        return classes;
    }

    /// <summary>
    /// Reads a CSV with the given header (compared without case); returns each data row with its 1-based line number.
    /// Fields may be double-quoted (RFC 4180), so paths with commas survive; a quoted field may not span lines.
    /// </summary>
    static List<(int Line, string[] Fields)> ReadTable(string file, string[] header)
    {
        if (!File.Exists(file)) throw new InputException($"{file}: file not found");
        var rows = new List<(int, string[])>();
        int lineNo = 0;
        foreach (var raw in File.ReadLines(file))
        {
            lineNo++;
            string line = raw.TrimEnd('\r');
            if (lineNo == 1)
            {
                var got = SplitLine(line, file, lineNo).Select(h => h.Trim().TrimStart('\uFEFF')).ToArray();
                if (!got.SequenceEqual(header, StringComparer.OrdinalIgnoreCase))
                    throw new InputException($"{file}:1: header is '{line}', expected '{string.Join(',', header)}'");
                continue;
            }
            if (line.Trim().Length == 0) continue;
            var fields = SplitLine(line, file, lineNo);
            if (fields.Length != header.Length)
                throw new InputException($"{file}:{lineNo}: {fields.Length} fields, expected {header.Length} " +
                    $"({string.Join(',', header)})");
            rows.Add((lineNo, fields.Select(f => f.Trim()).ToArray()));
        }
        if (lineNo == 0)
            throw new InputException($"{file}: empty file (expected the header {string.Join(',', header)})");
        return rows;
    }

    static string[] SplitLine(string line, string file, int lineNo)
    {
        var fields = new List<string>();
        var field = new System.Text.StringBuilder();
        bool quoted = false, wasQuoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c != '"') field.Append(c);
                else if (i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else quoted = false;
            }
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); wasQuoted = false; }
            else if (c == '"' && field.ToString().Trim().Length == 0 && !wasQuoted)
            {
                field.Clear();
                quoted = wasQuoted = true;
            }
            else if (c == '"') throw new InputException($"{file}:{lineNo}: stray quote at column {i + 1}");
            else field.Append(c);
        }
        if (quoted) throw new InputException($"{file}:{lineNo}: unterminated quoted field");
        fields.Add(field.ToString());
        return [.. fields];
    }
}
