using System.Globalization;
using System.Text;
using Spectre.Console;

namespace H2T.Cli;

/// <summary>
/// Spectre's <c>MarkupLineInterpolated</c> over several interpolated pieces, so a long line of output is written as
/// pieces of source of at most 120 characters: each piece's text is markup, its holes are escaped, as Spectre does.
/// (Two interpolated strings joined by + are a string, whose holes would not be escaped.)
/// </summary>
internal static class MarkupParts
{
    public static void MarkupLineParts(this IAnsiConsole console, params FormattableString[] parts)
    {
        var line = new StringBuilder();
        foreach (var part in parts) line.Append(part.ToString(EscapingFormatter.Instance));
        console.MarkupLine(line.ToString());
    }

    /// <summary>Formats a hole as the current culture does, then escapes it as markup.</summary>
    sealed class EscapingFormatter : IFormatProvider, ICustomFormatter
    {
        public static readonly EscapingFormatter Instance = new();

        public object? GetFormat(Type? formatType) => formatType == typeof(ICustomFormatter) ? this : null;

        public string Format(string? format, object? arg, IFormatProvider? formatProvider) => Markup.Escape(
            arg is IFormattable f ? f.ToString(format, CultureInfo.CurrentCulture) : arg?.ToString() ?? "");
    }
}
