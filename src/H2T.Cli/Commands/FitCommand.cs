using System.ComponentModel;
using System.Globalization;
using H2T.Configuration;
using H2T.Fit;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

/// <summary>fit's flags. Each setting flag stands for the <c>fit:</c> key in brackets (H2T.Fit.FitKeys, the one
/// table); --config, --resume, --device and --threads are about the run.</summary>
public sealed class FitSettings : GlobalSettings
{
    [CommandArgument(0, "<DATA>")] [RunOption] [Description(
        "train/ (and test/) class folders, a folder of class folders, or a path,label list file [[data]]")]
    public string Data { get; init; } = "";
    [CommandArgument(1, "[OVERRIDES]")] [RunOption] [Description("fit.KEY=VALUE overrides")]
    public string[] Overrides { get; init; } = [];
    [CommandOption("--out <DIR>")] [Description("the job's folder (default fit) [[out]]")]
    public string? Out { get; init; }
    [CommandOption("--time-limit <TIME>")] [Description("the whole job's budget: 10m, 1h30m, 90s (default 20m) " +
        "[[time_limit]]")]
    public string? TimeLimit { get; init; }
    [CommandOption("--preset <NAME>")] [Description(
        "fast (frozen network) or best (as much fine-tuning as fits; default best) [[preset]]")]
    public string? Preset { get; init; }
    [CommandOption("--pretrained <NAME>")] [Description(
        "the pretrained start (default mlnet:resnet18, offline) [[pretrained]]")]
    public string? Pretrained { get; init; }
    [CommandOption("--backbone <NAME>")] [Description("the architecture the weights fill [[backbone]]")]
    public string? Backbone { get; init; }
    [CommandOption("--tuning <KIND>")] [Description(
        "what the backbone learns: frozen, ssf, last-stage, full (default planned) [[tuning]]")]
    public string? Tuning { get; init; }
    [CommandOption("--image-size <PX>")] [Description("training image side (default planned) [[image_size]]")]
    public string? ImageSize { get; init; }
    [CommandOption("--epochs <E>")] [Description("stage I epochs (default planned) [[epochs]]")]
    public string? Epochs { get; init; }
    [CommandOption("--precision <P>")] [Description("fp32, bf16 or auto (default auto) [[precision]]")]
    public string? Precision { get; init; }
    [CommandOption("--batch-size <N>")] [Description("default 64 [[batch_size]]")]
    public string? BatchSize { get; init; }
    [CommandOption("--lr <LR>")] [Description("stage I learning rate (default planned) [[lr]]")]
    public string? Lr { get; init; }
    [CommandOption("--rho <SPEC>")] [Description(
        "H2T ratios tried beside rho 0 (default 0.1,0.2,0.3,0.5) [[rhos]]")]
    public string? Rho { get; init; }
    [CommandOption("--seed <N>")] [Description("the training seed (default 0) [[seed]]")]
    public string? Seed { get; init; }
    [CommandOption("--max-pixels <N>")] [Description(
        "refuse images over this many pixels before decoding (default 89478485) [[max_pixels]]")]
    public string? MaxPixels { get; init; }
    [CommandOption("--skip-undecodable")] [Description(
        "name undecodable files and go on without them [[skip_undecodable]]")]
    public bool? SkipUndecodable { get; init; }
    [CommandOption("--config <FILE>")] [RunOption] [Description("a YAML file with a fit: section")]
    public string? Config { get; init; }
    [CommandOption("--resume")] [RunOption] [Description("continue the job in --out from its first unfinished step")]
    public bool Resume { get; init; }

    /// <summary>The options, bound through FitKeys: the file, the overrides, the flags typed (later wins).</summary>
    public FitOptions Bind()
    {
        try
        {
            var entries = new List<ConfigEntry>();
            if (Config is not null)
                entries.AddRange(ConfigReader.ReadFile(Config).Where(e => e.Key.StartsWith("fit.",
                    StringComparison.Ordinal)));
            entries.AddRange(Overrides.Select(ConfigReader.ReadOverride));
            entries.AddRange(ConfigSupport.FlagEntries(this, FitKeys.FlagKey));
            // The argument is typed on the command line: it wins over a file's or an override's data.
            entries.Add(new("data", Data, null, "argument DATA"));
            return FitKeys.Bind(entries) with { Resume = Resume };
        }
        catch (H2T.Settings.ConfigException e) { throw new UsageException(e.Message); }
    }
}

/// <summary><c>h2t fit</c>: the library's FitJob with one progress bar, then the one-screen summary.</summary>
public sealed class FitCommand(IAnsiConsole console) : Command<FitSettings>
{
    public override int Execute(CommandContext context, FitSettings settings, CancellationToken cancellationToken)
    {
        var options = settings.Bind();
        var device = CommandSupport.Start(settings.Threads, settings.Device);
        console.Write(new Rule($"[bold]h2t fit[/] {Markup.Escape(options.Data)}: budget " +
            $"{FitKeys.Duration(options.TimeLimit)}, preset {options.Preset.ToString().ToLowerInvariant()}")
            .LeftJustified());
        var result = CommandSupport.Train(() => WithBar(options, device, cancellationToken));
        Summary(result);
        return 0;
    }

    /// <summary>Runs the job under one bar: the step, the share done, the time spent and left against the budget.
    /// Lines the job prints appear above the bar.</summary>
    FitResult WithBar(FitOptions options, TorchSharp.torch.Device device, CancellationToken cancel)
    {
        if (!console.Profile.Capabilities.Interactive)
            return FitJob.Run(options, device, new LineObserver(console), cancel);
        FitResult? result = null;
        console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("fit", maxValue: 1);
                result = FitJob.Run(options, device, new BarObserver(console, task), cancel);
                task.Value = 1;
            });
        return result!;
    }

    static string Line(FitProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"{p.Step}: {p.Fraction * 100:F0}%, {FitKeys.Duration(p.Elapsed)} spent, about " +
        $"{FitKeys.Duration(p.Remaining)} left of {FitKeys.Duration(p.Budget)}");

    sealed class BarObserver(IAnsiConsole console, ProgressTask task) : IFitObserver
    {
        public void Message(string text) => console.MarkupLineInterpolated($"{text}");

        public void Progress(FitProgress progress)
        {
            task.Description = Markup.Escape(Line(progress));
            task.Value = progress.Fraction;
        }
    }

    /// <summary>Without a terminal (a log, CI): the lines, and a progress line when the step changes or every tenth
    /// of the job.</summary>
    sealed class LineObserver(IAnsiConsole console) : IFitObserver
    {
        string step = "";
        int tenth = -1;

        public void Message(string text) => console.MarkupLineInterpolated($"{text}");

        public void Progress(FitProgress progress)
        {
            int t = (int)(progress.Fraction * 10);
            if (progress.Step == step && t == tenth) return;
            (step, tenth) = (progress.Step, t);
            console.MarkupLineInterpolated($"[grey]{Line(progress)}[/]");
        }
    }

    void Summary(FitResult r)
    {
        console.Write(new Rule($"[bold]result[/]: {Markup.Escape(r.Chosen)}, chosen on validation").LeftJustified());
        var table = new Table().AddColumns("Head", "Medium", "Tail", "mean per-class", "micro", "ECE");
        table.AddRow(F(r.Head), F(r.Medium), F(r.Tail), $"[bold]{F(r.MeanPerClass)}[/]", F(r.Micro), F(r.Ece));
        console.Write(table);
        console.MarkupLine("[grey]test split; groups are mean per-class accuracy (%). Micro counts images, so head " +
            "classes dominate it.[/]");
        foreach (var w in r.Weakest)
        {
            var taken = w.TakenFor is null ? "" : $", most often taken for {w.TakenFor} ({w.TakenForShare:F0}%)";
            console.MarkupLineInterpolated(
                $"weak: {w.Name} ({w.Group}, {w.TrainImages} training images) {w.Accuracy:F1}%{taken}");
        }
        var wall = FitKeys.Duration(TimeSpan.FromSeconds(r.WallSeconds));
        console.MarkupLineInterpolated($"job folder: {r.Folder} ({wall})");
        if (r.Page is not null) console.MarkupLineInterpolated($"run page: {r.Page}");
        console.MarkupLineInterpolated($"model card: {r.Card}");
        console.MarkupLineInterpolated($"model: {r.Model ?? r.Checkpoint}");
        console.MarkupLineInterpolated($"serve it: [bold]{r.ServeCommand}[/]");
    }

    static string F(double v) => double.IsNaN(v) ? "-" : v.ToString("F2", CultureInfo.InvariantCulture);
}
