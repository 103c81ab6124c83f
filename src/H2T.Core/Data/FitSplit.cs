using System.Globalization;
using System.Text;
using H2T.Settings;

namespace H2T.Data;

/// <summary>How <see cref="FitSplit.Make(ImageSet, int, FitSplitOptions)"/> sizes its splits.</summary>
/// <param name="TestFraction">Share of each class moved to the test split when the data has none.</param>
/// <param name="ValidationFraction">Validation images per class as a share of the smallest class's training
/// images.</param>
/// <param name="MaxValidationPerClass">Validation images per class at most. 50 keeps the noise of the mean per-class
/// accuracy that picks rho near 2 points for ten classes, and the head needs no more for a balanced split.</param>
/// <param name="KeepTogether">Groups of training paths (duplicates: <see cref="DataAudit.TrainDuplicateGroups"/>)
/// that a split made here never puts on two sides.</param>
public sealed record FitSplitOptions(double TestFraction = 0.2, double ValidationFraction = 0.2,
    int MaxValidationPerClass = 50, IReadOnlyList<IReadOnlyList<string>>? KeepTogether = null);

/// <summary>The train / validation / test split of a user's data, as <see cref="FitSplit"/> made it.</summary>
public sealed class FitSplitResult
{
    internal FitSplitResult(IReadOnlyList<string> classNames, LabelledFiles train, LabelledFiles validation,
        LabelledFiles test, bool testGiven, int validationPerClass, FitSplitOptions options, int groupsKept)
    {
        ClassNames = classNames;
        Train = train;
        Validation = validation;
        Test = test;
        TestGiven = testGiven;
        ValidationPerClass = validationPerClass;
        Options = options;
        GroupsKeptTogether = groupsKept;
        Groups = ClassGroups.Default(TrainCounts);
    }

    public IReadOnlyList<string> ClassNames { get; }
    public LabelledFiles Train { get; }
    public LabelledFiles Validation { get; }
    public LabelledFiles Test { get; }
    /// <summary>Whether the test split is the data's own (else drawn here).</summary>
    public bool TestGiven { get; }
    /// <summary>The validation images each class was to get (a duplicate group may leave a class one or more
    /// short).</summary>
    public int ValidationPerClass { get; }
    public FitSplitOptions Options { get; }
    /// <summary>Duplicate groups (two or more images) the split kept on one side.</summary>
    public int GroupsKeptTogether { get; }
    public int[] TrainCounts => Train.CountPerClass(ClassNames.Count);
    public int[] ValidationCounts => Validation.CountPerClass(ClassNames.Count);
    public int[] TestCounts => Test.CountPerClass(ClassNames.Count);
    /// <summary>Head / medium / tail by <see cref="ClassGroups.Default"/> on the final training counts.</summary>
    public ClassGroups Groups { get; }

    /// <summary>One line: the sizes and the rules that gave them.</summary>
    public string Describe()
    {
        var ci = CultureInfo.InvariantCulture;
        string N(int n) => n.ToString("N0", ci);
        string test = TestGiven ? $"test: the data's own, {N(Test.Count)} images"
            : $"test: {(100 * Options.TestFraction).ToString("0.#", ci)}% of each class (rounded, at least 1, " +
                $"leaving 2 for " +
                $"training and validation), {N(Test.Count)} images";
        int smallest = TrainCounts.Zip(ValidationCounts, (a, b) => a + b).Min();
        return $"split: {test}; validation: {ValidationPerClass} per class (floor(" +
            Options.ValidationFraction.ToString(ci) + $" x {smallest}, the smallest class's training images, " +
            $"within 1..{Options.MaxValidationPerClass}), {N(Validation.Count)} images; train: {N(Train.Count)} " +
            "images" + (GroupsKeptTogether > 0 ? $"; {GroupsKeptTogether} duplicate group(s) kept on one side" : "");
    }

    /// <summary>
    /// Writes the manifest <see cref="Manifest"/> reads into <paramref name="dataDir"/>: classes.csv
    /// (<c>class,train,val,test,group</c>) and train.csv, val.csv, test.csv (<c>path,label</c>: absolute paths, class
    /// names). All or nothing: the files are written into a temporary folder beside it, which is then renamed into
    /// place (a manifest already there is replaced; any other existing folder is refused).
    /// </summary>
    public void Write(string dataDir) =>
        Manifest.Write(dataDir, ClassNames, Groups, Train, Validation, Test);
}

/// <summary>
/// Splits a user's usable images for a fit. Without a test split, a stratified one: round(20%) of each class, at
/// least 1, and never leaving a class fewer than 2 (1 train, 1 validation), so a class needs 3 images. Then always a
/// class-balanced validation split from the training images: v = clamp(floor(0.2 x n_min), 1, 50) per class, n_min
/// the smallest class's training images after the test split, so the tail keeps at least 80% of them for training
/// (when n_min &lt; 5 the one validation image is more than 20%). With the data's own test split a class needs 2
/// training images. Duplicate groups (<see cref="FitSplitOptions.KeepTogether"/>) are drawn as one unit, so the
/// copies of an image never straddle train and test or train and validation; a group that would overfill a class's
/// quota stays in training. Draws are seeded (numpy's MT19937 on the seed).
/// </summary>
public static class FitSplit
{
    const uint Salt = 0x85ebca6b;

    /// <summary>The split of an audit's usable set, keeping its duplicate groups together.</summary>
    public static FitSplitResult Make(DataAudit audit, int seed, FitSplitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(audit);
        options ??= new FitSplitOptions();
        return Make(audit.Usable, seed, options with { KeepTogether = options.KeepTogether ??
            audit.TrainDuplicateGroups });
    }

    public static FitSplitResult Make(ImageSet usable, int seed, FitSplitOptions options)
    {
        ArgumentNullException.ThrowIfNull(usable);
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.TestFraction is > 0 and < 1) || !(options.ValidationFraction is > 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(options), "test and validation fractions: expected in (0, 1)");
        if (options.MaxValidationPerClass < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxValidationPerClass,
                "validation images per class at most: expected >= 1");
        int k = usable.NumClasses;
        var counts = usable.Train.CountPerClass(k);
        bool testGiven = usable.Test is not null;
        int need = testGiven ? 2 : 3;
        var few = Enumerable.Range(0, k).Where(c => counts[c] < need).ToList();
        if (few.Count > 0)
            throw new DataFormatException(
                $"{usable.Source}: " + string.Join("; ", few.Take(5).Select(c =>
                    $"class '{usable.ClassNames[c]}' has {counts[c]} usable training image(s)")) +
                (few.Count > 5 ? $"; and {few.Count - 5} more" : "") +
                $": need at least {need} per class ({(testGiven ? "1 train, 1 validation" :
                    "1 train, 1 validation, 1 test")})");

        // Units: the duplicate groups, and every other image alone.
        var indexOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < usable.Train.Count; i++) indexOf.TryAdd(usable.Train.Paths[i], i);
        var unitOf = new int[usable.Train.Count];
        Array.Fill(unitOf, -1);
        var units = new List<int[]>();
        foreach (var g in options.KeepTogether ?? [])
        {
            var members = g.Where(indexOf.ContainsKey).Select(p => indexOf[p]).Where(i => unitOf[i] < 0).Distinct()
                .ToArray();
            if (members.Length < 2) continue;
            foreach (var i in members) unitOf[i] = units.Count;
            units.Add(members);
        }
        int groups = units.Count;
        for (int i = 0; i < usable.Train.Count; i++)
            if (unitOf[i] < 0) { unitOf[i] = units.Count; units.Add([i]); }

        var rng = new NumpyRandom(unchecked((uint)seed ^ Salt));
        var labels = usable.Train.Labels;
        var inTest = new bool[units.Count];
        LabelledFiles test;
        if (testGiven) test = usable.Test!;
        else
        {
            var quota = counts.Select(n => Math.Clamp((int)Math.Round(options.TestFraction * n,
                MidpointRounding.AwayFromZero), 1, n - 2)).ToArray();
            inTest = Draw(units, unitOf, labels, quota, null, rng, k);
            test = usable.Train.Where(i => inTest[unitOf[i]]);
        }
        var left = new int[k];
        for (int i = 0; i < labels.Length; i++) if (!inTest[unitOf[i]]) left[labels[i]]++;
        int v = Math.Clamp((int)Math.Floor(options.ValidationFraction * left.Min()), 1, options.MaxValidationPerClass);
        var inVal = Draw(units, unitOf, labels, [.. left.Select(n => Math.Min(v, n - 1))], inTest, rng, k);
        var validation = usable.Train.Where(i => inVal[unitOf[i]]);
        var train = usable.Train.Where(i => !inTest[unitOf[i]] && !inVal[unitOf[i]]);
        return new FitSplitResult(usable.ClassNames, train, validation, test, testGiven, v, options, groups);
    }

    /// <summary>Images drawn in a seeded order until each class has its quota; an image brings its whole unit,
    /// taken only when it fits every class the unit holds (so a group of g images is reached about as often as g
    /// single images). <paramref name="taken"/> units are not available.</summary>
    static bool[] Draw(List<int[]> units, int[] unitOf, int[] labels, int[] quota, bool[]? taken, NumpyRandom rng,
        int k)
    {
        var order = Enumerable.Range(0, labels.Length).Where(i => taken is null || !taken[unitOf[i]]).ToArray();
        rng.Shuffle<int>(order);
        var got = new int[k];
        var chosen = new bool[units.Count];
        var seen = new bool[units.Count];
        var need = new int[k];
        foreach (var i in order)
        {
            int u = unitOf[i];
            if (seen[u]) continue;
            seen[u] = true;
            Array.Clear(need);
            foreach (var m in units[u]) need[labels[m]]++;
            bool fits = true;
            for (int c = 0; c < k && fits; c++) fits = got[c] + need[c] <= quota[c];
            if (!fits) continue;
            chosen[u] = true;
            for (int c = 0; c < k; c++) got[c] += need[c];
        }
        return chosen;
    }
}

/// <summary>The manifest folder <see cref="FitSplitResult.Write"/> writes and the <c>manifest</c> dataset
/// reads.</summary>
public static class Manifest
{
    public const string ClassesFile = "classes.csv", TrainFile = "train.csv", ValidationFile = "val.csv",
        TestFile = "test.csv";
    public const string ClassesHeader = "class,train,val,test,group", ListHeader = "path,label";
    public static IReadOnlyList<string> FileNames { get; } = [ClassesFile, TrainFile, ValidationFile, TestFile];

    /// <summary>A manifest as read back: class names in label order, groups from classes.csv, the three
    /// splits.</summary>
    public sealed record Contents(IReadOnlyList<string> ClassNames, ClassGroups Groups, LabelledFiles Train,
        LabelledFiles Validation, LabelledFiles Test);

    /// <summary>Writes a manifest folder atomically (a temporary folder, then renamed into place); an existing
    /// manifest is replaced, a folder holding anything else is refused.</summary>
    public static void Write(string dataDir, IReadOnlyList<string> classNames, ClassGroups groups,
        LabelledFiles train, LabelledFiles validation, LabelledFiles test)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDir);
        var target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDir));
        if (Directory.Exists(target))
        {
            var foreign = Directory.EnumerateFileSystemEntries(target).Select(Path.GetFileName)
                .Where(n => !FileNames.Contains(n)).ToList();
            if (foreign.Count > 0)
                throw new IOException(
                    $"{target}: exists and is not a manifest folder (it holds {string.Join(", ", foreign.Take(3))}): " +
                    "expected a new folder or one this wrote before");
        }
        else if (File.Exists(target)) throw new IOException($"{target}: is a file: expected a folder for the manifest");
        var parent = Path.GetDirectoryName(target) ?? ".";
        Directory.CreateDirectory(parent);
        var temp = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(temp);
            var k = classNames.Count;
            var (tr, va, te) = (train.CountPerClass(k), validation.CountPerClass(k), test.CountPerClass(k));
            var classes = new StringBuilder(ClassesHeader + "\n");
            for (int c = 0; c < k; c++)
                classes.Append(Csv.Line(classNames[c], Num(tr[c]), Num(va[c]), Num(te[c]), groups.GroupOf(c)))
                    .Append('\n');
            File.WriteAllText(Path.Combine(temp, ClassesFile), classes.ToString());
            WriteList(Path.Combine(temp, TrainFile), train, classNames);
            WriteList(Path.Combine(temp, ValidationFile), validation, classNames);
            WriteList(Path.Combine(temp, TestFile), test, classNames);
            if (Directory.Exists(target))
            {
                var old = $"{target}.{Environment.ProcessId}.{Guid.NewGuid():N}.old";
                Directory.Move(target, old);
                Directory.Move(temp, target);
                Directory.Delete(old, true);
            }
            else Directory.Move(temp, target);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
        }
    }

    static string Num(int n) => n.ToString(CultureInfo.InvariantCulture);

    static void WriteList(string path, LabelledFiles files, IReadOnlyList<string> classNames)
    {
        var sb = new StringBuilder(ListHeader + "\n");
        for (int i = 0; i < files.Count; i++)
            sb.Append(Csv.Line(files.Paths[i], classNames[files.Labels[i]])).Append('\n');
        File.WriteAllText(path, sb.ToString());
    }

    /// <summary>Reads <paramref name="dir"/>; errors name the file and line.</summary>
    public static Contents Read(string dir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dir);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"{dir}: manifest folder not found: expected {string.Join(", ",
                FileNames)}");
        var names = new List<string>();
        var groupOf = new List<string>();
        foreach (var (fields, where) in Rows(Path.Combine(dir, ClassesFile), ClassesHeader))
        {
            if (fields.Count != 5)
                throw new DataFormatException($"{where}: {fields.Count} field(s): expected {ClassesHeader}");
            if (fields[0].Length == 0) throw new DataFormatException($"{where}: empty class name");
            if (fields[4] is not ("head" or "medium" or "tail"))
                throw new DataFormatException($"{where}: group '{fields[4]}': expected head, medium or tail");
            if (names.Contains(fields[0]))
                throw new DataFormatException($"{where}: class '{fields[0]}' listed twice");
            names.Add(fields[0]);
            groupOf.Add(fields[4]);
        }
        if (names.Count < 2)
            throw new DataFormatException(
                $"{Path.Combine(dir, ClassesFile)}: {names.Count} class(es): need at least 2");
        var labelOf = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        int[] In(string g) => [.. Enumerable.Range(0, names.Count).Where(c => groupOf[c] == g)];
        var groups = new ClassGroups(In("head"), In("medium"), In("tail"));
        return new Contents(names, groups, List(dir, TrainFile, labelOf), List(dir, ValidationFile, labelOf),
            List(dir, TestFile, labelOf));
    }

    static LabelledFiles List(string dir, string name, Dictionary<string, int> labelOf)
    {
        var paths = new List<string>();
        var labels = new List<int>();
        foreach (var (fields, where) in Rows(Path.Combine(dir, name), ListHeader))
        {
            if (fields.Count != 2)
                throw new DataFormatException($"{where}: {fields.Count} field(s): expected path,label");
            if (!labelOf.TryGetValue(fields[1], out int label))
                throw new DataFormatException($"{where}: class '{fields[1]}' is not in {ClassesFile}");
            if (!Path.IsPathRooted(fields[0]))
                throw new DataFormatException($"{where}: '{fields[0]}': expected an absolute path");
            if (!File.Exists(fields[0]))
                throw new DataFormatException($"{where}: {fields[0]}: image file not found (moved?)");
            paths.Add(fields[0]);
            labels.Add(label);
        }
        return new LabelledFiles([.. paths], [.. labels]);
    }

    static IEnumerable<(List<string> Fields, string Where)> Rows(string file, string header)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"{file}: manifest file not found", file);
        int lineNo = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNo++;
            var where = $"{file}:{lineNo}";
            if (lineNo == 1)
            {
                if (line.Trim() != header)
                    throw new DataFormatException($"{where}: header '{line}': expected {header}");
                continue;
            }
            if (line.Length == 0) continue;
            yield return (Csv.Split(line, where), where);
        }
    }
}
