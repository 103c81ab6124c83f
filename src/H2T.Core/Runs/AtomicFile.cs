using System.Text.Json;
using System.Text.Json.Serialization;

namespace H2T.Runs;

/// <summary>Writes files so a reader (or a crash) never sees half of one: temp file in the same folder, flush,
/// rename.</summary>
public static class AtomicFile
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public static void Write(string path, Action<Stream> write)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteText(string path, string text) => Write(path, s =>
    {
        using var w = new StreamWriter(s, leaveOpen: true);
        w.Write(text);
    });

    public static void WriteJson<T>(string path, T value) => WriteText(path, JsonSerializer.Serialize(value, Json));
}
