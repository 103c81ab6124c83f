using System.Globalization;
using H2T.Configuration;
using H2T.Settings;
using H2T.Training;

namespace H2T.Grid;

/// <summary>A stage-I method of a grid: an optional config file and settings on top of it (any config key).</summary>
public sealed record GridStageOne(string Name, string? Config, IReadOnlyList<ConfigEntry> Set);

/// <summary>A stage-II method: a sweep of rho from each stage-I cell of the methods in <see cref="From"/> (all when
/// empty).</summary>
public sealed record GridStageTwo(string Name, string? Config, IReadOnlyList<ConfigEntry> Set, string? Rho,
    int? ValidationPerClass,
    IReadOnlyList<string> From);

/// <summary>Where and how the cells run under Slurm. Null fields are left to the cluster's defaults.</summary>
public sealed record SlurmOptions
{
    public string? Partition { get; init; }
    public string? Account { get; init; }
    public string? Qos { get; init; }
    /// <summary>Wall time per task (sbatch --time), default 1 day.</summary>
    public string Time { get; init; } = "1-00:00:00";
    public int CpusPerTask { get; init; } = 2;
    public string Mem { get; init; } = "8G";
    public string? Gres { get; init; }
    /// <summary>Seconds before the time limit at which Slurm sends SIGTERM (sbatch --signal=B:TERM@N).</summary>
    public int SignalSeconds { get; init; } = 120;
    /// <summary>At most this many tasks of one array at once (the %N of --array), 0: no limit.</summary>
    public int MaxParallel { get; init; }
    /// <summary>The command that runs h2t on the nodes; default: the h2t that submits.</summary>
    public string? H2t { get; init; }
    /// <summary>Further sbatch options, each written as an #SBATCH line.</summary>
    public IReadOnlyList<string> Extra { get; init; } = [];
    /// <summary>A task that has been restarted this often (preemptions and time limits: SLURM_RESTART_COUNT) fails
    /// instead of requeueing itself again, so a time limit shorter than one epoch cannot loop forever.</summary>
    public int MaxRequeues { get; init; } = 20;
}

/// <summary>
/// A grid of runs as data (<c>h2t grid PLAN.yaml</c>): seeds x imbalance factors x stage-I methods, then each stage-II
/// method swept over rho from every stage-I cell. Read with the config reader, so every error names the plan's line;
/// every cell is bound by the one binder when the plan is read, so a bad key fails before anything runs.
/// Relative paths (out, config files, data) are relative to the directory h2t runs in, as for every command.
/// </summary>
public sealed record GridPlan
{
    public required string File { get; init; }
    public required string Name { get; init; }
    public required string Out { get; init; }
    public required IReadOnlyList<int> Seeds { get; init; }
    /// <summary>Imbalance factors (n_max / n_min); empty: each method's own.</summary>
    public IReadOnlyList<double> Imbalance { get; init; } = [];
    public required IReadOnlyList<GridStageOne> StageOne { get; init; }
    public IReadOnlyList<GridStageTwo> StageTwo { get; init; } = [];
    /// <summary>libtorch threads of every cell (--threads); null: all cores locally, cpus_per_task under
    /// Slurm.</summary>
    public int? Threads { get; init; }
    /// <summary>Every cell's --device (cpu, cuda, cuda:N); null: the commands' default. With slurm.gres: gpu:1 it puts
    /// the cells on the GPU Slurm gives them (a CUDA build of h2t; docs/gpu.md).</summary>
    public string? Device { get; init; }
    public SlurmOptions Slurm { get; init; } = new();
    /// <summary>Every cell's config, bound when the plan was loaded (<see cref="Bind"/>), by cell id; empty for a plan
    /// only read (<see cref="Read"/>), whose cells are bound when they run.</summary>
    public IReadOnlyDictionary<string, ExperimentConfig> Bound { get; init; } =
        new Dictionary<string, ExperimentConfig>();

    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public static GridPlan Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var entries = ConfigReader.ReadFile(path);
        string? name = null, outDir = null, device = null;
        int? threads = null;
        List<int>? seeds = null;
        var imbalance = new List<double>();
        var one = new List<MethodBuilder>();
        var two = new List<MethodBuilder>();
        var slurm = new SlurmOptions();
        foreach (var e in entries)
        {
            var parts = e.Key.Split('.');
            switch (parts[0])
            {
                case "name" when parts.Length == 1: name = e.String(); break;
                case "out" when parts.Length == 1: outDir = e.String(); break;
                case "device" when parts.Length == 1:
                    device = e.String();
                    if (!(device == "cpu" || device == "cuda" || (device.StartsWith("cuda:",
                        StringComparison.Ordinal) && int.TryParse(device[5..], NumberStyles.None, Ci, out _))))
                        throw e.Error($"expected cpu, cuda or cuda:N, got '{device}'");
                    break;
                case "threads" when parts.Length == 1:
                    threads = e.Int();
                    if (threads < 1) throw e.Error("expected a whole number >= 1");
                    break;
                case "seeds" when parts.Length == 1:
                    seeds = [.. e.Ints()];
                    if (seeds.Count == 0 || seeds.Any(s => s < 0) ||
                        seeds.Distinct().Count() != seeds.Count) throw e.Error("expected distinct seeds >= 0");
                    break;
                case "imbalance" when parts.Length == 1:
                    foreach (var x in e.Items ?? [e.Scalar])
                    {
                        var v = new ConfigEntry(e.Key, x, null, e.Where).Double();
                        if (v < 1) throw e.Error(
                            $"expected imbalance factors n_max / n_min >= 1 (100, not 0.01), got {x}");
                        // Two factors that print alike would share a folder (if<IF>): one would overwrite the other.
                        if (imbalance.Any(f => f.ToString("0.##", Ci) == v.ToString("0.##", Ci)))
                            throw e.Error(
                                $"imbalance factor {x} appears twice (folders are named by the factor to 2 decimals)");
                        imbalance.Add(v);
                    }
                    break;
                case "stage1" when parts.Length >= 3:
                {
                    var m = MethodBuilder.Find(one, parts[1], e, stageTwo: false);
                    if (parts[2] == "config" && parts.Length == 3) m.Config = e.String();
                    else if (parts[2] == "set" && parts.Length > 3) m.Set.Add(e with { Key = string.Join('.',
                        parts[3..]) });
                    else throw Unknown(e, "stage1.<method>: config, set.<key>");
                    break;
                }
                case "stage2" when parts.Length >= 3:
                {
                    var m = MethodBuilder.Find(two, parts[1], e, stageTwo: true);
                    switch (parts[2])
                    {
                        case "config" when parts.Length == 3: m.Config = e.String(); break;
                        case "rho" when parts.Length == 3:
                            var spec = e.Items is { } items ? string.Join(',', items) : e.String();
                            ValueGrid.Parse(spec, $"{e.Where}: {e.Key}");
                            m.Rho = spec;
                            break;
                        case "val_per_class" when parts.Length == 3:
                            m.Val = e.Int();
                            if (m.Val < 0) throw e.Error("expected a whole number >= 0");
                            break;
                        case "from" when parts.Length == 3: m.From.AddRange(e.Strings()); break;
                        case "set" when parts.Length > 3: m.Set.Add(e with { Key = string.Join('.',
                            parts[3..]) }); break;
                        default: throw Unknown(e, "stage2.<method>: config, rho, val_per_class, from, set.<key>");
                    }
                    break;
                }
                case "slurm" when parts.Length == 2: slurm = SlurmOption(slurm, parts[1], e); break;
                default: throw Unknown(e,
                    "name, out, seeds, imbalance, threads, device, stage1.<method>, stage2.<method>, slurm.<option>");
            }
        }
        if (name is null || name.Length == 0) throw new ConfigException($"{path}: name: missing (the grid's name)");
        if (!IsName(name)) throw new ConfigException(
            $"{path}: name '{name}': expected letters, digits, '-' or '_' (it names the Slurm jobs)");
        if (seeds is null) throw new ConfigException(
            $"{path}: seeds: missing (a list of training seeds, e.g. seeds: [0, 1])");
        if (one.Count == 0) throw new ConfigException($"{path}: stage1: missing (at least one stage-I method)");
        foreach (var t in two)
            foreach (var f in t.From)
                if (!one.Any(o => o.Name == f))
                    throw new ConfigException(
                        $"{t.Where}: stage2.{t.Name}.from: no stage-I method '{f}' (the plan has: " +
                        $"{string.Join(", ", one.Select(o => o.Name))})");
        return new GridPlan
        {
            File = Path.GetFullPath(path),
            Name = name,
            Out = outDir ?? Path.Combine("runs", "grid", name),
            Seeds = seeds,
            Imbalance = imbalance,
            Threads = threads,
            Device = device,
            StageOne = one.Select(o => new GridStageOne(o.Name, o.Config, o.Set)).ToList(),
            StageTwo = two.Select(t => new GridStageTwo(t.Name, t.Config, t.Set, t.Rho, t.Val, t.From)).ToList(),
            Slurm = slurm,
        };
    }

    sealed class MethodBuilder(string name, string where)
    {
        public string Name { get; } = name;
        public string Where { get; } = where;
        public string? Config { get; set; }
        public List<ConfigEntry> Set { get; } = [];
        public string? Rho { get; set; }
        public int? Val { get; set; }
        public List<string> From { get; } = [];

        public static MethodBuilder Find(List<MethodBuilder> list, string name, ConfigEntry e, bool stageTwo)
        {
            if (!IsName(name)) throw e.Error(
                $"method name '{name}': expected letters, digits, '-' or '_' (it names folders)");
            if (name == "grid" ||
                name == "slurm") throw e.Error($"method name '{name}': reserved for the grid's own folders");
            // A stage-II method's folder sits beside its stage I's, which is called stage1.
            if (stageTwo &&
                name == "stage1") throw e.Error("method name 'stage1': reserved for the stage-I runs' folders");
            var m = list.Find(x => x.Name == name);
            if (m is null) list.Add(m = new MethodBuilder(name, e.Where));
            return m;
        }
    }

    static SlurmOptions SlurmOption(SlurmOptions s, string key, ConfigEntry e) => key switch
    {
        "partition" => s with { Partition = e.String() },
        "account" => s with { Account = e.String() },
        "qos" => s with { Qos = e.String() },
        "time" => s with { Time = e.String() },
        "mem" => s with { Mem = e.String() },
        "gres" => s with { Gres = e.String() },
        "h2t" => s with { H2t = e.String() },
        "cpus_per_task" => s with { CpusPerTask = e.Int() >= 1 ? e.Int() :
            throw e.Error("expected a whole number >= 1") },
        "signal_seconds" => s with { SignalSeconds = e.Int() is >= 1 and <= 65535 ? e.Int() :
            throw e.Error("expected seconds in 1..65535") },
        "max_parallel" => s with { MaxParallel = e.Int() >= 0 ? e.Int() :
            throw e.Error("expected a whole number >= 0") },
        "max_requeues" => s with { MaxRequeues = e.Int() >= 0 ? e.Int() :
            throw e.Error("expected a whole number >= 0") },
        "extra" => s with { Extra = e.Strings() },
        _ => throw Unknown(e,
            "slurm: partition, account, qos, time, cpus_per_task, mem, gres, signal_seconds, max_parallel, " +
            "max_requeues, h2t, extra"),
    };

    /// <summary>A plan value with the cell's {seed} and {imbalance} written in.</summary>
    static string Fill(string s, GridCell cell) => s.Replace("{seed}", cell.Seed.ToString(Ci), StringComparison.Ordinal)
        .Replace("{imbalance}", cell.Imbalance?.ToString("0.##", Ci) ?? "", StringComparison.Ordinal);

    static bool IsName(string name) => name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or
        '_');

    static ConfigException Unknown(ConfigEntry e,
        string expected) => new($"{e.Where}: unknown plan key '{e.Key}' (expected {expected})");

    /// <summary>The cells in the order they must run: every stage-I cell, then every stage-II cell.</summary>
    public IReadOnlyList<GridCell> Cells()
    {
        var cells = new List<GridCell>();
        var factors = Imbalance.Count == 0 ? [(double?)null] : Imbalance.Select(f => (double?)f).ToList();
        int index = 0;
        var stageOne = new List<GridCell>();
        foreach (var m in StageOne)
            foreach (var f in factors)
                foreach (var seed in Seeds)
                {
                    var folder = Path.Combine(Out, m.Name, f is { } v ? $"if{v.ToString("0.##", Ci)}" : "own",
                        $"s{seed}");
                    var cell = new GridCell(GridStage.One, index++, m.Name, null, f, seed, Path.Combine(folder,
                        "stage1"), null);
                    stageOne.Add(cell);
                }
        cells.AddRange(stageOne);
        foreach (var t in StageTwo)
        {
            int i = 0;
            foreach (var s1 in stageOne)
            {
                if (t.From.Count > 0 && !t.From.Contains(s1.Method)) continue;
                cells.Add(new GridCell(GridStage.Two, i++, s1.Method, t.Name, s1.Imbalance, s1.Seed,
                    Path.Combine(Path.GetDirectoryName(s1.Folder)!, t.Name), s1));
            }
        }
        return cells;
    }

    /// <summary>A cell's settings, as its command receives them: the config file (its name filled in) and, on top, the
    /// plan's <c>set</c>, then the cell's rho values, validation split, imbalance factor and seed. Each entry keeps
    /// the plan line it came from.</summary>
    (StageMode Mode, string? Config, IReadOnlyList<ConfigEntry> Overrides) Settings(GridCell cell)
    {
        var where = $"{File}: cell {cell.Id}";
        var overrides = new List<ConfigEntry>();
        string? config;
        if (cell.Stage == GridStage.One)
        {
            var m = StageOne.First(x => x.Name == cell.Method);
            config = m.Config;
            overrides.AddRange(m.Set);
            if (cell.Imbalance is { } f) overrides.Add(new ConfigEntry("imb_factor", f.ToString("R", Ci), null,
                $"{where} (imbalance)"));
        }
        else
        {
            var t = StageTwo.First(x => x.Name == cell.StageTwoMethod);
            config = t.Config;
            overrides.AddRange(t.Set);
            if (t.Rho is { } rho) overrides.Add(new ConfigEntry("sweep.rho", rho, null,
                $"{File}: stage2.{t.Name}.rho"));
            if (t.ValidationPerClass is { } v) overrides.Add(new ConfigEntry("val_per_class", v.ToString(Ci), null,
                $"{File}: stage2.{t.Name}.val_per_class"));
        }
        overrides.Add(new ConfigEntry("seed", cell.Seed.ToString(Ci), null, $"{where} (seed)"));
        var filled = overrides.Select(e => e with
        {
            Scalar = e.Scalar is null ? null : Fill(e.Scalar, cell),
            Items = e.Items?.Select(x => x is null ? null : Fill(x, cell)).ToList(),
        }).ToList();
        return (cell.Stage == GridStage.One ? StageMode.StageOne : StageMode.Sweep, config is null ? null : Fill(config,
            cell), filled);
    }

    /// <summary>The h2t command line of one cell (without the program name), as --local runs it in-process and a
    /// Slurm task runs it as a process: its <see cref="Settings"/> as <c>key=value</c> overrides.</summary>
    public IReadOnlyList<string> Arguments(GridCell cell, int? threads)
    {
        ArgumentNullException.ThrowIfNull(cell);
        var (mode, config, overrides) = Settings(cell);
        var args = new List<string> { mode == StageMode.StageOne ? "stage1" : "sweep" };
        if (config is not null) args.AddRange(["--config", config]);
        static string Value(ConfigEntry e) =>
            e.Items is { } xs ? "[" + string.Join(", ", xs.Select(x => x ?? "null")) + "]" : e.Scalar ?? "null";
        args.AddRange(overrides.Select(e => $"{e.Key}={Value(e)}"));
        if (cell.Stage == GridStage.Two) args.AddRange(["--from", Path.GetFullPath(Path.Combine(cell.After!.Folder,
            "last.ckpt"))]);
        args.AddRange(["--out", Path.GetFullPath(cell.Folder), "--resume"]);
        if ((Threads ?? threads) is { } n) args.AddRange(["--threads", n.ToString(Ci)]);
        if (Device is { } d) args.AddRange(["--device", d]);
        return args;
    }

    /// <summary>Binds every cell's <see cref="Settings"/> as its command would, so a plan with a bad key or value fails
    /// here, naming the plan's line. A stage-II config's 'resume' checkpoint is replaced by the cell's
    /// --from.</summary>
    public void Validate() => _ = Bind();

    /// <summary>The plan with every cell bound (<see cref="Bound"/>): what the cells run with.</summary>
    public GridPlan Bind() => this with { Bound = Cells().ToDictionary(c => c.Id, BindCell, StringComparer.Ordinal) };

    ExperimentConfig BindCell(GridCell cell)
    {
        var (mode, config, overrides) = Settings(cell);
        // As the command line binds: the environment's aliases, the config file, then the cell's settings.
        var file = config is null ? [] : ConfigReader.ReadFile(config);
        return ReferenceConfig.Bind(mode, [.. ReferenceConfig.EnvironmentEntries(), .. file, .. overrides]);
    }

    /// <summary>The cell's run for the library's entry point (<see cref="ExperimentRun.Prepare"/>): its bound config,
    /// into its folder, resumed; a stage-II cell from its stage-I cell's last checkpoint. The same run
    /// <see cref="Arguments"/> spells as a command line.</summary>
    public ExperimentRun Prepare(GridCell cell)
    {
        ArgumentNullException.ThrowIfNull(cell);
        var experiment = Bound.TryGetValue(cell.Id, out var bound) ? bound : BindCell(cell);
        var from = cell.Stage == GridStage.Two ? Path.GetFullPath(Path.Combine(cell.After!.Folder, "last.ckpt")) : null;
        var folder = Path.GetFullPath(cell.Folder);
        return ExperimentRun.Prepare(experiment, Settings(cell).Config, from, folder, resume: true);
    }
}

public enum GridStage { One, Two }

/// <summary>One run of a grid: a stage-I run, or a stage-II sweep from stage-I cell <see cref="After"/>. The index is
/// the Slurm array index (stage-I cells count from 0, each stage-II method's cells from 0 in stage-I order).</summary>
public sealed record GridCell(GridStage Stage, int Index, string Method, string? StageTwoMethod, double? Imbalance,
    int Seed, string Folder, GridCell? After)
{
    /// <summary>The array a cell belongs to: "stage1", or the stage-II method's name.</summary>
    public string Array => Stage == GridStage.One ? "stage1" : StageTwoMethod!;

    /// <summary>The cell's name on the command line (<c>--cell stage1:3</c>) and in tables.</summary>
    public string Id => $"{Array}:{Index.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>What the cell is, in words: method, imbalance, seed.</summary>
    public string Label => $"{(Stage == GridStage.One ? Method : $"{Method} -> {StageTwoMethod}")}" +
                           $"{(Imbalance is { } f ? $" IF={f.ToString("0.##", CultureInfo.InvariantCulture)}" : "")} " +
                               $"seed {Seed.ToString(CultureInfo.InvariantCulture)}";
}
