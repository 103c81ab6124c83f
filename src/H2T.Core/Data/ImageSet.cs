using System.Globalization;
using System.Text;

namespace H2T.Data;

/// <summary>Image files and their labels (indices into the set's class names); paths are absolute.</summary>
public sealed record LabelledFiles(string[] Paths, int[] Labels)
{
    public int Count => Paths.Length;

    /// <summary>Images per class.</summary>
    public int[] CountPerClass(int numClasses) => DatasetSplits.CountPerClass(Labels, numClasses);

    /// <summary>The files whose index <paramref name="keep"/> accepts, in order.</summary>
    public LabelledFiles Where(Func<int, bool> keep)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var idx = Enumerable.Range(0, Paths.Length).Where(keep).ToArray();
        return new([.. idx.Select(i => Paths[i])], [.. idx.Select(i => Labels[i])]);
    }
}

/// <summary>
/// A user's labelled images as <see cref="ImageSetReader"/> found them: the class names (ordinal order, from the
/// training images), the training files and the test files when the data has a test split.
/// </summary>
/// <param name="Source">The folder or list file read (absolute).</param>
/// <param name="Layout">"train/ and test/", "train/ only", "class folders" or "list FILE".</param>
public sealed record ImageSet(string Source, string Layout, IReadOnlyList<string> ClassNames, LabelledFiles Train,
    LabelledFiles? Test)
{
    /// <summary>Files that are not images by their extension (README, labels.txt, .tif ...): skipped,
    /// counted.</summary>
    public int Ignored { get; init; }

    /// <summary>A few of the ignored files (relative to <see cref="Source"/>), for the report.</summary>
    public IReadOnlyList<string> IgnoredExamples { get; init; } = [];

    /// <summary>What the reader noticed but accepted (a class gathered from subfolders, a test split without some
    /// class), one line each.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    public int NumClasses => ClassNames.Count;
}

/// <summary>
/// Reads the image data users have, refusing anything ambiguous with a message that names the file, folder, class or
/// line and says what was expected (<see cref="DataFormatException"/>; a missing path is a
/// <see cref="FileNotFoundException"/>). Nothing is written.
/// <list type="bullet">
/// <item><c>DIR/train/&lt;class&gt;/...</c>, optionally with <c>DIR/test/&lt;class&gt;/...</c>: the given split.</item>
/// <item><c>DIR/&lt;class&gt;/...</c> (no train/): training images only.</item>
/// <item>A list file: <c>path,label[,split]</c> lines (CSV, fields may be quoted) or whitespace-separated
/// <c>path label [split]</c> lines, <c>#</c> comments and blank lines skipped, an optional header line
/// <c>path,label[,split]</c>; paths relative to the list's folder or absolute; split is train or test (default
/// train).</item>
/// </list>
/// Images are recognised by extension (<see cref="ImageExtensions"/>, any case); other files are ignored and counted.
/// Entries whose name starts with '.' (.DS_Store, .ipynb_checkpoints) are hidden and skipped silently.
/// A class folder may hold its images directly, or only in subfolders at any depth (cat/2019/*.jpg and
/// cat/2020/*.jpg are all 'cat'); one holding both images and subfolders with images is refused, because its
/// subfolders may be classes (the folder given one level too high). Refused as mixed-up layouts: image files at the
/// top next to class folders or train/; train/ next to folders other than test/ (a val/ folder included: the fit
/// makes its own validation split); test/ without train/. Symbolic links are followed; one that leads back to a
/// folder above it (a loop), or to a folder already read, is refused naming the link.
/// </summary>
public static class ImageSetReader
{
    /// <summary>The extensions of image files (lower case, with the dot).</summary>
    public static IReadOnlyList<string> ImageExtensions { get; } = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"];

    const int MaxLinkHops = 40; // Linux's ELOOP limit

    public static bool IsImageFile(string path) =>
        ImageExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    public static ImageSet Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        if (File.Exists(full)) return ReadList(full);
        if (!Directory.Exists(full))
            throw new FileNotFoundException(
                $"{full}: not found: expected a folder of class folders (or train/ and test/) or a path,label list",
                full);
        return ReadFolder(full);
    }

    // ---- folders ----

    sealed class Scan(string root, string rootReal)
    {
        public string Root { get; } = root;
        public string RootReal { get; } = rootReal;
        public int Ignored;
        public List<string> IgnoredExamples { get; } = [];
        public List<string> Notes { get; } = [];
        /// <summary>Real path of every folder read -> the path it was reached by.</summary>
        public Dictionary<string, string> Visited { get; } = new(StringComparer.Ordinal);

        /// <summary>Marks a folder read; reaching it a second time (through a link) is refused.</summary>
        public void Enter(string real, string path)
        {
            if (Visited.TryGetValue(real, out var first) && first != path)
                throw new DataFormatException(
                    $"{path}: leads to {real}, which is already read as {first} (a symbolic link): each image must " +
                    "be read once (remove the link)");
            Visited[real] = path;
        }

        public void Ignore(string file, string? why = null)
        {
            Ignored++;
            if (IgnoredExamples.Count < 5)
                IgnoredExamples.Add(Path.GetRelativePath(Root, file) + (why is null ? "" : $" ({why})"));
        }
    }

    static ImageSet ReadFolder(string root)
    {
        var rootReal = RealPath(root);
        var scan = new Scan(root, rootReal);
        scan.Enter(rootReal, root);
        var (dirs, files) = Entries(root, rootReal, scan, [rootReal]);
        var images = files.Where(f => IsImageFile(f.Path)).ToList();
        foreach (var f in files.Where(f => !IsImageFile(f.Path))) scan.Ignore(f.Path);
        var train = dirs.FirstOrDefault(d => d.Name == "train");
        var test = dirs.FirstOrDefault(d => d.Name == "test");
        if (train is null && test is not null)
            throw new DataFormatException(
                $"{root}: has test/ but no train/: expected train/<class>/ beside test/<class>/ (or class folders " +
                "directly)");
        if (train is not null)
        {
            var others = dirs.Where(d => d.Name is not ("train" or "test")).Select(d => d.Name + "/").ToList();
            if (others.Count > 0)
                throw new DataFormatException(
                    $"{root}: mixed-up layout: train/ next to {string.Join(", ", others)}: expected only train/ and " +
                    "test/ (a validation folder: merge it into train/; the fit makes its own validation split)");
            if (images.Count > 0)
                throw new DataFormatException(
                    $"{root}: mixed-up layout: image file(s) {Examples(root, images.Select(i => i.Path))} next to " +
                    "train/: expected images only inside train/<class>/ and test/<class>/");
            var (trainFiles, classes) = Classes(train, scan, null);
            LabelledFiles? testFiles = null;
            if (test is not null) (testFiles, _) = Classes(test, scan, classes);
            return Make(root, test is null ? "train/ only" : "train/ and test/", classes, trainFiles, testFiles, scan);
        }
        if (dirs.Count == 0)
            throw new DataFormatException(images.Count > 0
                ? $"{root}: {images.Count} image file(s) but no class folders: expected one folder per class " +
                    "(<class>/*.jpg), or train/<class>/ and test/<class>/"
                : $"{root}: empty: no class folders and no images: expected <class>/*.jpg folders, or " +
                    "train/<class>/ and test/<class>/, or a path,label list file");
        if (images.Count > 0)
            throw new DataFormatException(
                $"{root}: mixed-up layout: image file(s) {Examples(root, images.Select(i => i.Path))} next to the " +
                $"class folders {string.Join(", ", dirs.Take(5).Select(d => d.Name + "/"))}: expected every image " +
                "inside its class folder");
        var (all, names) = Classes(new Entry(root, rootReal, Path.GetFileName(root)), scan, null, dirs);
        return Make(root, "class folders", names, all, null, scan);
    }

    static ImageSet Make(string root, string layout, string[] classes, LabelledFiles train, LabelledFiles? test,
        Scan scan)
    {
        if (test is not null)
        {
            var counts = test.CountPerClass(classes.Length);
            var absent = Enumerable.Range(0, classes.Length).Where(c => counts[c] == 0).Select(c => classes[c])
                .ToList();
            if (absent.Count > 0)
                scan.Notes.Add($"the test split has no image of {absent.Count} class(es): " +
                    string.Join(", ", absent.Take(5)) + (absent.Count > 5 ? ", ..." : ""));
        }
        return new ImageSet(root, layout, classes, train, test)
        {
            Ignored = scan.Ignored, IgnoredExamples = [.. scan.IgnoredExamples], Notes = [.. scan.Notes],
        };
    }

    sealed record Entry(string Path, string Real, string Name);

    /// <summary>Subfolders and files of <paramref name="dir"/> (hidden ones skipped), links resolved, in ordinal
    /// order. <paramref name="ancestors"/> are the real paths of the folders above (a link back to one is a
    /// loop).</summary>
    static (List<Entry> Dirs, List<Entry> Files) Entries(string dir, string real, Scan scan,
        IReadOnlyCollection<string> ancestors)
    {
        var dirs = new List<Entry>();
        var files = new List<Entry>();
        IEnumerable<FileSystemInfo> entries;
        try { entries = new DirectoryInfo(dir).EnumerateFileSystemInfos().ToList(); }
        catch (UnauthorizedAccessException e) { throw new DataFormatException($"{dir}: cannot be read ({e.Message})",
            e); }
        foreach (var e in entries.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            if (e.Name.StartsWith('.')) continue;
            var path = Path.Combine(dir, e.Name);
            if (e.LinkTarget is null)
            {
                var entryReal = Path.Combine(real, e.Name);
                if (e is DirectoryInfo) dirs.Add(new Entry(path, entryReal, e.Name));
                else files.Add(new Entry(path, entryReal, e.Name));
                continue;
            }
            var target = RealPath(path);
            if (Directory.Exists(target))
            {
                if (ancestors.Contains(target))
                    throw new DataFormatException(
                        $"{path}: symbolic link loop: it leads to {target}, a folder above it: remove the link");
                dirs.Add(new Entry(path, target, e.Name));
            }
            else if (File.Exists(target)) files.Add(new Entry(path, target, e.Name));
            else scan.Ignore(path, "broken link");
        }
        return (dirs, files);
    }

    /// <summary>The class folders of <paramref name="parent"/> (or <paramref name="classDirs"/>): their images,
    /// labelled in ordinal order of the names. With <paramref name="trainClasses"/> (a test split) every folder must
    /// be one of them.</summary>
    static (LabelledFiles Files, string[] Classes) Classes(Entry parent, Scan scan, string[]? trainClasses,
        List<Entry>? classDirs = null)
    {
        var ancestors = new List<string> { scan.RootReal };
        if (classDirs is null)
        {
            scan.Enter(parent.Real, parent.Path);
            ancestors.Add(parent.Real);
            var (dirs, files) = Entries(parent.Path, parent.Real, scan, ancestors);
            var images = files.Where(f => IsImageFile(f.Path)).ToList();
            foreach (var f in files.Where(f => !IsImageFile(f.Path))) scan.Ignore(f.Path);
            if (images.Count > 0)
                throw new DataFormatException(
                    $"{parent.Path}: mixed-up layout: image file(s) {Examples(scan.Root, images.Select(i => i.Path))}" +
                    $" directly in {parent.Name}/: expected {parent.Name}/<class>/*.jpg");
            if (dirs.Count == 0)
                throw new DataFormatException(
                    $"{parent.Path}: no class folders: expected {parent.Name}/<class>/*.jpg");
            classDirs = dirs;
        }
        var names = classDirs.Select(d => d.Name).ToArray(); // already in ordinal order
        var labelOf = trainClasses is null ? null
            : trainClasses.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        if (labelOf is not null)
        {
            var unknown = names.Where(n => !labelOf.ContainsKey(n)).ToList();
            if (unknown.Count > 0)
                throw new DataFormatException(
                    $"{parent.Path}: test class(es) {string.Join(", ", unknown.Select(n => $"'{n}'"))} absent from " +
                    $"training: expected test classes among the training classes " +
                    $"({string.Join(", ", trainClasses!.Take(10))}{(trainClasses!.Length > 10 ? ", ..." : "")})");
        }
        var paths = new List<string>();
        var labels = new List<int>();
        for (int c = 0; c < classDirs.Count; c++)
        {
            var images = new List<string>();
            scan.Enter(classDirs[c].Real, classDirs[c].Path);
            Collect(classDirs[c], classDirs[c], scan, [.. ancestors, classDirs[c].Real], images, depth: 0);
            if (images.Count == 0)
                throw new DataFormatException(
                    $"{classDirs[c].Path}: class '{names[c]}' has no images: expected " +
                    $"{string.Join("/", ImageExtensions)} files in it");
            int label = labelOf?[names[c]] ?? c;
            paths.AddRange(images);
            labels.AddRange(Enumerable.Repeat(label, images.Count));
        }
        if (trainClasses is null && names.Length < 2)
            throw new DataFormatException(
                $"{parent.Path}: one class only ('{names[0]}'): need at least 2 classes, one folder each" +
                (Directory.EnumerateDirectories(classDirs[0].Path).Any()
                    ? $" (if {classDirs[0].Name}/'s subfolders are the classes, point at {classDirs[0].Path})" : ""));
        return (new LabelledFiles([.. paths], [.. labels]), names);
    }

    static void Collect(Entry classDir, Entry dir, Scan scan, List<string> ancestors, List<string> images, int depth)
    {
        var (dirs, files) = Entries(dir.Path, dir.Real, scan, ancestors);
        int before = images.Count;
        foreach (var f in files)
        {
            if (IsImageFile(f.Path)) images.Add(f.Path);
            else scan.Ignore(f.Path);
        }
        bool direct = images.Count > before;
        int afterDirect = images.Count;
        foreach (var d in dirs)
        {
            scan.Enter(d.Real, d.Path);
            Collect(classDir, d, scan, [.. ancestors, d.Real], images, depth + 1);
        }
        if (depth == 0 && dirs.Count > 0)
        {
            if (direct && images.Count > afterDirect)
                throw new DataFormatException(
                    $"{dir.Path}: mixed-up layout: class '{classDir.Name}' holds images directly and in subfolders " +
                    $"({string.Join(", ", dirs.Take(5).Select(d => d.Name + "/"))}): expected one or the other (if " +
                    "the subfolders are classes, point at this folder; if not, move its images into a subfolder)");
            if (images.Count > afterDirect)
                scan.Notes.Add($"class '{classDir.Name}' gathers its images from {dirs.Count} subfolder(s) " +
                    $"({string.Join(", ", dirs.Take(3).Select(d => d.Name))}{(dirs.Count > 3 ? ", ..." : "")})");
        }
    }

    static string Examples(string root, IEnumerable<string> paths)
    {
        var list = paths.ToList();
        return string.Join(", ", list.Take(3).Select(p => Path.GetRelativePath(root, p))) +
            (list.Count > 3 ? $" and {list.Count - 3} more" : "");
    }

    /// <summary>
    /// The path with every symbolic link resolved (realpath), managed so it works on any OS. Each component that is
    /// a link is replaced by its target, followed again; more than <see cref="MaxLinkHops"/> links is a loop (a
    /// link to itself, or a ring of links), refused naming <paramref name="path"/>.
    /// </summary>
    static string RealPath(string path)
    {
        var pending = new Stack<string>();
        var full = Path.GetFullPath(path);
        var current = Path.GetPathRoot(full) ?? "/";
        Push(pending, full[current.Length..]);
        int hops = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            var next = Path.Combine(current, part);
            string? link;
            try { link = new FileInfo(next).LinkTarget; }
            catch (IOException) { link = null; }
            if (link is null) { current = next; continue; }
            if (++hops > MaxLinkHops)
                throw new DataFormatException(
                    $"{path}: symbolic link loop: more than {MaxLinkHops} links to follow " +
                    "(a link that leads to itself): remove the link");
            // current is real, so '..' in the target can be resolved by name.
            var target = Path.GetFullPath(Path.IsPathRooted(link) ? link : Path.Combine(current, link));
            var root = Path.GetPathRoot(target) ?? "/";
            current = root;
            Push(pending, target[root.Length..]);
        }
        return Path.TrimEndingDirectorySeparator(current);
    }

    static void Push(Stack<string> pending, string relative)
    {
        var parts = relative.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (int i = parts.Length - 1; i >= 0; i--) pending.Push(parts[i]);
    }

    // ---- list files ----

    static readonly string[] SplitNames = ["train", "test"];

    static ImageSet ReadList(string file)
    {
        var dir = Path.GetDirectoryName(file) ?? ".";
        var name = Path.GetFileName(file);
        var rows = new List<(string Path, string Label, bool Test, int Line)>();
        int lineNo = 0;
        bool? csv = Path.GetExtension(file).Equals(".csv", StringComparison.OrdinalIgnoreCase) ? true : null;
        bool first = true;
        foreach (var raw in File.ReadLines(file))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            csv ??= line.Contains(',');
            var fields = csv.Value ? Csv.Split(line, $"{file}:{lineNo}")
                : Whitespace(line);
            if (first)
            {
                first = false;
                if (fields.Count >= 2 && fields[0].Equals("path", StringComparison.OrdinalIgnoreCase) &&
                    fields[1].Equals("label", StringComparison.OrdinalIgnoreCase)) continue;
            }
            string expected = csv.Value ? "path,label or path,label,split" : "path label or path label split";
            if (fields.Count is < 2 or > 3)
                throw new DataFormatException(
                    $"{file}:{lineNo}: '{Clip(line)}' has {fields.Count} field(s): expected {expected} (split train " +
                    "or test)");
            var (p, label) = (fields[0].Trim(), fields[1].Trim());
            if (p.Length == 0) throw new DataFormatException($"{file}:{lineNo}: empty path: expected {expected}");
            if (label.Length == 0)
                throw new DataFormatException($"{file}:{lineNo}: empty label for {p}: expected {expected}");
            bool test = false;
            if (fields.Count == 3)
            {
                var split = fields[2].Trim().ToLowerInvariant();
                if (!SplitNames.Contains(split))
                    throw new DataFormatException(
                        $"{file}:{lineNo}: split '{fields[2].Trim()}': expected train or test");
                test = split == "test";
            }
            var abs = Path.GetFullPath(Path.IsPathRooted(p) ? p : Path.Combine(dir, p));
            if (!IsImageFile(abs))
                throw new DataFormatException(
                    $"{file}:{lineNo}: {p} is not an image file by its extension: expected " +
                    string.Join(", ", ImageExtensions));
            if (!File.Exists(abs))
                throw new DataFormatException($"{file}:{lineNo}: {p}: image file not found (looked at {abs})");
            rows.Add((abs, label, test, lineNo));
        }
        var trainRows = rows.Where(r => !r.Test).ToList();
        if (trainRows.Count == 0)
            throw new DataFormatException(rows.Count == 0
                ? $"{file}: no entries: expected lines path,label (or 'path label'), optionally a third column " +
                    "split (train|test)"
                : $"{file}: all {rows.Count} entries are test: expected training entries (split train or none)");
        var classes = trainRows.Select(r => r.Label).Distinct().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length < 2)
            throw new DataFormatException(
                $"{file}: one class only ('{classes[0]}'): need at least 2 classes among the training entries");
        var labelOf = classes.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        var stray = rows.FirstOrDefault(r => r.Test && !labelOf.ContainsKey(r.Label));
        if (stray.Path is not null)
            throw new DataFormatException(
                $"{file}:{stray.Line}: test class '{stray.Label}' is absent from training: expected one of the " +
                $"training classes ({string.Join(", ", classes.Take(10))}{(classes.Length > 10 ? ", ..." : "")})");
        var testRows = rows.Where(r => r.Test).ToList();
        var scan = new Scan(dir, dir);
        var set = Make(file, $"list {name}", classes,
            new LabelledFiles([.. trainRows.Select(r => r.Path)], [.. trainRows.Select(r => labelOf[r.Label])]),
            testRows.Count == 0 ? null
                : new LabelledFiles([.. testRows.Select(r => r.Path)], [.. testRows.Select(r => labelOf[r.Label])]),
            scan);
        return set;
    }

    static List<string> Whitespace(string line)
    {
        // path label [split]: the path may hold spaces, so the label (and split) are taken from the end.
        var tokens = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length < 2) return [.. tokens];
        bool hasSplit = tokens.Length >= 3 && SplitNames.Contains(tokens[^1].ToLowerInvariant());
        int end = line.Length;
        for (int k = 0; k < (hasSplit ? 2 : 1); k++)
            end = line.AsSpan(0, line.LastIndexOfAny([' ', '\t'], end - 1)).TrimEnd().Length;
        var path = line[..end];
        return hasSplit ? [path, tokens[^2], tokens[^1]] : [path, tokens[^1]];
    }

    static string Clip(string line) => line.Length <= 80 ? line : line[..77] + "...";
}

/// <summary>RFC 4180 fields on one line: comma separated, a field in double quotes may hold commas and doubled
/// quotes.</summary>
public static class Csv
{
    /// <summary>The fields of <paramref name="line"/>; <paramref name="where"/> names it in errors
    /// (file:line).</summary>
    public static List<string> Split(string line, string where)
    {
        ArgumentNullException.ThrowIfNull(line);
        var fields = new List<string>();
        var sb = new StringBuilder();
        int i = 0;
        while (true)
        {
            sb.Clear();
            while (i < line.Length && line[i] == ' ') i++;
            if (i < line.Length && line[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i >= line.Length)
                        throw new DataFormatException($"{where}: unterminated quoted field: expected a closing \"");
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    sb.Append(line[i++]);
                }
                while (i < line.Length && line[i] == ' ') i++;
                if (i < line.Length && line[i] != ',')
                    throw new DataFormatException(
                        $"{where}: text after a quoted field at column {i + 1}: expected a comma");
            }
            else
            {
                int end = line.IndexOf(',', i);
                if (end < 0) end = line.Length;
                sb.Append(line, i, end - i);
                i = end;
            }
            fields.Add(sb.ToString());
            if (i >= line.Length) return fields;
            i++; // the comma
        }
    }

    /// <summary>A field as CSV writes it: quoted when it holds a comma, a quote, a line break or edge
    /// blanks.</summary>
    public static string Quote(string field)
    {
        ArgumentNullException.ThrowIfNull(field);
        bool needs = field.AsSpan().IndexOfAny(",\"\r\n") >= 0 || field.Length > 0 &&
            (char.IsWhiteSpace(field[0]) || char.IsWhiteSpace(field[^1]));
        return needs ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : field;
    }

    /// <summary>One CSV line of <paramref name="fields"/>.</summary>
    public static string Line(params string[] fields) => string.Join(",", fields.Select(Quote));

    internal static string Number(int n) => n.ToString("N0", CultureInfo.InvariantCulture);
}
