using System.Globalization;
using System.Text;
using System.Text.Json;
using H2T.Inference;
using Spectre.Console;

namespace H2T.Cli;

/// <summary>Prediction rows as JSONL or CSV, streamed to a temporary file and moved into place by <see cref="Commit"/>
/// (an interrupted run leaves no half-written output); and the terminal's one line per image.</summary>
internal sealed class PredictionWriter : IDisposable
{
    readonly string path, tmp;
    readonly StreamWriter writer;
    readonly bool csv;
    bool committed;

    public static string? FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".jsonl" or ".ndjson" => "jsonl",
        ".csv" => "csv",
        _ => null,
    };

    public PredictionWriter(string path)
    {
        this.path = Path.GetFullPath(path);
        csv = FormatOf(path) == "csv";
        Directory.CreateDirectory(Path.GetDirectoryName(this.path)!);
        tmp = Path.Combine(Path.GetDirectoryName(this.path)!, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        writer = new StreamWriter(tmp, false, new UTF8Encoding(false));
        if (csv) writer.WriteLine("path,label,correct,top1_index,top1_name,top1_probability,top_k,error");
    }

    public void Write(PredictionRow row)
    {
        var p = row.Prediction;
        if (csv)
        {
            var top = p is null ? "" : string.Join(" ",
                p.Top.Select(t => $"{t.Index}:{t.Probability.ToString("0.######", CultureInfo.InvariantCulture)}"));
            writer.WriteLine(string.Join(",", Csv(row.Input.Path),
                row.Input.Label?.ToString(CultureInfo.InvariantCulture) ?? "",
                row.Correct is { } c ? (c ? "true" : "false") : "",
                    p?.Best.Index.ToString(CultureInfo.InvariantCulture) ?? "", Csv(p?.Best.Name ?? ""),
                p?.Best.Probability.ToString("0.######", CultureInfo.InvariantCulture) ?? "", top,
                    Csv(row.Error ?? "")));
            return;
        }
        var record = new Dictionary<string, object?>
        {
            ["path"] = row.Input.Path,
            ["label"] = row.Input.Label,
            ["correct"] = row.Correct,
            ["top"] = p?.Top.Select(t => new { index = t.Index, name = t.Name, probability = t.Probability }).ToArray(),
            ["error"] = row.Error,
        };
        writer.WriteLine(JsonSerializer.Serialize(record));
    }

    static string Csv(string s) => s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? $"\"{s.Replace("\"", "\"\"")}\"" : s;

    public void Commit()
    {
        writer.Flush();
        writer.BaseStream.Flush();
        writer.Dispose();
        File.Move(tmp, path, overwrite: true);
        committed = true;
    }

    public void Dispose()
    {
        writer.Dispose();
        if (!committed && File.Exists(tmp)) File.Delete(tmp);
    }

    /// <summary>
    /// The terminal's output: up to <see cref="TableRows"/> images as one table at the end; a longer run streams one
    /// line per image from the first row past that (the rows so far included), so memory stays bounded.
    /// </summary>
    internal sealed class Terminal(IAnsiConsole console)
    {
        public const int TableRows = 200;
        readonly List<PredictionRow> held = [];
        bool streaming;

        public void Add(PredictionRow row)
        {
            if (streaming) { Print(console, row); return; }
            held.Add(row);
            if (held.Count <= TableRows) return;
            streaming = true;
            foreach (var r in held) Print(console, r);
            held.Clear();
        }

        public void Finish()
        {
            if (streaming || held.Count == 0) return;
            var t = new Table().Border(TableBorder.Rounded).AddColumns("image", "top-k (probability)", "label");
            foreach (var r in held)
            {
                var top = r.Prediction is { } p ? Markup.Escape(TopText(p)) :
                    $"[red]error:[/] {Markup.Escape(r.Error ?? "")}";
                var label = r.Correct switch { true => "[green]right[/]", false => "[red]wrong[/]", null => "" };
                t.AddRow(Markup.Escape(r.Input.Display), top, label);
            }
            console.Write(t);
        }
    }

    public static void Print(IAnsiConsole console, PredictionRow row)
    {
        if (row.Prediction is not { } p)
        {
            console.MarkupLineInterpolated($"{row.Input.Display}  [red]error:[/] {row.Error}");
            return;
        }
        var mark = row.Correct switch { true => " [green]right[/]", false => " [red]wrong[/]", null => "" };
        console.MarkupLine($"{Markup.Escape(row.Input.Display)}  {Markup.Escape(TopText(p))}{mark}");
    }

    static string TopText(Prediction p) => string.Join("  ",
        p.Top.Select(t => $"{t.Name} {t.Probability.ToString("0.000", CultureInfo.InvariantCulture)}"));
}
