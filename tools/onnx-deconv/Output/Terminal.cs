using System.Globalization;

namespace OnnxDeconv.Cli.Output;

/// <summary>
/// What the output is written to: its width in columns and whether a person is watching (a TTY). Width: COLUMNS when
/// set to a number, else the terminal's width when the writer is the console and not redirected, else
/// <see cref="DefaultWidth"/>. Tests pin both per call (AsyncLocal), so the developer's terminal never leaks in.
/// </summary>
internal static class Terminal
{
    /// <summary>Width when nothing says otherwise (piped to a file or a CI log): wide enough for most tables unwrapped.</summary>
    public const int DefaultWidth = 120;

    /// <summary>Narrower than this, nothing is readable anyway: tables are laid out for this width.</summary>
    public const int MinWidth = 30;

    private sealed record Pinned(string? Columns, bool Interactive);
    private static readonly AsyncLocal<Pinned?> Override = new();

    /// <summary>As if COLUMNS were <paramref name="columns"/> (null: unset) and the output were (not) a terminal.</summary>
    public static IDisposable Pin(string? columns, bool interactive = false)
    {
        var old = Override.Value;
        Override.Value = new Pinned(columns, interactive);
        return new Restore(() => Override.Value = old);
    }

    public static int Width(TextWriter writer)
    {
        var pinned = Override.Value;
        string? columns = pinned is not null ? pinned.Columns : Environment.GetEnvironmentVariable("COLUMNS");
        if (int.TryParse(columns, NumberStyles.None, CultureInfo.InvariantCulture, out int c) && c > 0) return Math.Max(c, MinWidth);
        if (pinned is null && IsConsole(writer))
        {
            try
            {
                int w = Console.WindowWidth;
                if (w > 0) return Math.Max(w, MinWidth);
            }
            catch (Exception e) when (e is IOException or PlatformNotSupportedException or InvalidOperationException) { }
        }
        return DefaultWidth;
    }

    /// <summary>True when <paramref name="writer"/> is the real console's stdout or stderr and that is not redirected.</summary>
    public static bool IsInteractive(TextWriter writer) => Override.Value?.Interactive ?? IsConsole(writer);

    /// <summary>
    /// A progress bar may be drawn on <paramref name="writer"/>: a terminal, and not a CI job (whose log may be a pseudo
    /// terminal that keeps every redraw). A pinned terminal (tests) decides alone.
    /// </summary>
    public static bool DrawsProgress(TextWriter writer) => Override.Value?.Interactive ?? (IsConsole(writer) && !IsCi());

    private static bool IsCi() =>
        Environment.GetEnvironmentVariable("CI") is { Length: > 0 } ci && !ci.Equals("false", StringComparison.OrdinalIgnoreCase);

    private static bool IsConsole(TextWriter writer) =>
        (ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected)
        || (ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected);
}

/// <summary>Undoes an AsyncLocal override when disposed (tests' fakes and pinned terminals).</summary>
internal sealed class Restore(Action undo) : IDisposable
{
    public void Dispose() => undo();
}
