using System.ComponentModel;
using System.Globalization;
using H2T.Runs;
using H2T.Models;
using H2T.Settings;
using H2T.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace H2T.Cli.Commands;

public sealed class TauNormSettings : CheckpointDataSettings
{
    [CommandOption("--from <CHECKPOINT>")] [Description(
        "a checkpoint with a linear classifier (stage I for Decouple's tau-norm, or stage II)")]
    public string From { get; init; } = "";
    [CommandOption("--tau <SPEC>")] [DefaultValue("0:2:0.25")] [Description(
        "tau values: start:stop:step or a comma list")]
    public string Tau { get; init; } = "0:2:0.25";
    [CommandOption("--val-per-class <N>")] [DefaultValue(100)] [Description(
        "validation images per class to choose tau on (0: no choice)")]
    public int ValidationPerClass { get; init; } = 100;
    [CommandOption("--out <CHECKPOINT>")] [Description(
        "write the checkpoint with the chosen tau (default: beside --from, tau-norm.ckpt)")]
    public string? Out { get; init; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(From) ? ValidationResult.Error("--from: a checkpoint is required")
        : ValidationPerClass < 0 ? ValidationResult.Error("--val-per-class must be >= 0")
        : base.Validate();
}

/// <summary>Decouple's tau-normalised classifier over a grid of tau, chosen on validation, one backbone pass per
/// split.</summary>
public sealed class TauNormCommand(IAnsiConsole console) : Command<TauNormSettings>
{
    public override int Execute(CommandContext context, TauNormSettings settings, CancellationToken cancellationToken)
    {
        var taus = CommandSupport.Guard(() => ValueGrid.Parse(settings.Tau, "tau"), t =>
        {
            if (t.Length == 0 || t.Any(x =>
                x < 0)) throw new ConfigException($"--tau {settings.Tau}: expected values >= 0");
        });
        if (!File.Exists(settings.From)) throw new UsageException($"--from {settings.From}: checkpoint not found");
        var device = CommandSupport.Start(settings);
        var precision = settings.PrecisionAsked; // parsed once, when the options were bound
        var (rows, selected, output) = CommandSupport.Train(() =>
            TauNormalization.Run(settings.From, taus, settings.DataPath, settings.ValidationPerClass, settings.Out,
                device, precision));
        var ci = CultureInfo.InvariantCulture;
        var t = new Table().Border(TableBorder.Rounded).AddColumns("tau", "val All", "Head", "Medium", "Tail", "All",
            "ECE");
        foreach (var r in rows)
            t.AddRow(TauNormalization.Label(r.Tau) + (r.Tau == selected ? " (selected)" : ""),
                r.Validation?.Top1.ToString("F2", ci) ?? "-",
                r.Test.Head.ToString("F2", ci), r.Test.Medium.ToString("F2", ci), r.Test.Tail.ToString("F2", ci),
                    r.Test.Top1.ToString("F2", ci), r.Test.Ece.ToString("F2", ci));
        console.Write(t);
        console.MarkupLine("test accuracy (%); tau = 0 is the classifier as trained, minus its bias");
        if (selected is { } tau)
            console.MarkupLineParts($"tau = {TauNormalization.Label(tau)} chosen on validation; checkpoint: {output}");
        return 0;
    }
}
