using System.Globalization;
using OnnxDeconv.GraphRewrite.Pipeline;

namespace OnnxDeconv.Cli.Output;

/// <summary>
/// Progress of a long run (auto's timing, the bench) on stderr. On a terminal: one bar redrawn in place
/// ("auto  [██████░░░░░░]  3/6  node 3/5: /up2/ConvTranspose"), fitted to the width, erased before anything else is
/// written and when done. Otherwise (a pipe, a CI log, <c>CI</c> set): each step and line as a plain line, so logs stay
/// readable and greppable. Never writes to stdout, where tables and JSON go.
/// </summary>
public sealed class ProgressLog : IDisposable
{
    private const int MaxCells = 24;
    private readonly TextWriter _writer;
    private readonly string _title;
    private readonly string? _plainPrefix;
    private string? _drawn; // the bar on screen now, or null

    /// <param name="plainPrefix">Off a terminal, each step is printed as this prefix + what it is doing; null: steps
    /// are not printed there (the bench prints a result line per layer instead).</param>
    public ProgressLog(TextWriter writer, string title, string? plainPrefix)
    {
        _writer = writer;
        _title = title;
        _plainPrefix = plainPrefix;
        Interactive = Terminal.DrawsProgress(writer);
    }

    /// <summary>Drawing a bar (a person is watching a terminal), not printing lines.</summary>
    public bool Interactive { get; }

    public void Step(ProgressStep step)
    {
        if (!Interactive)
        {
            if (_plainPrefix is not null) _writer.WriteLine(_plainPrefix + step.What);
            return;
        }
        Draw(Bar(step, Terminal.Width(_writer)));
    }

    /// <summary>A line that stays (a result, a warning): the bar is erased, the line written, the bar drawn again below it.</summary>
    public void Line(string text)
    {
        string? bar = _drawn;
        Erase();
        _writer.WriteLine(text);
        if (bar is not null) Draw(bar);
    }

    /// <summary>Erases the bar (before a table is printed, and at the end).</summary>
    public void Erase()
    {
        if (_drawn is null) return;
        _writer.Write("\r" + new string(' ', _drawn.Length) + "\r");
        _writer.Flush();
        _drawn = null;
    }

    public void Dispose() => Erase();

    /// <summary>The bar's text at <paramref name="width"/> columns (one column left free so the cursor never wraps).</summary>
    internal string Bar(ProgressStep step, int width)
    {
        string count = string.Create(CultureInfo.InvariantCulture, $"{Math.Min(step.Done + 1, step.Total)}/{step.Total}");
        // The bar gives up cells before the count and a few columns of label are lost.
        int cells = Math.Clamp(width - 1 - (_title.Length + 7 + count.Length) - 12, 6, MaxCells);
        int filled = (int)Math.Round(step.Fraction * cells);
        string head = $"{_title}  [{new string('█', filled)}{new string('░', cells - filled)}]  {count}  ";
        int room = width - 1 - head.Length;
        if (room <= 3) return head.TrimEnd()[..Math.Min(head.TrimEnd().Length, Math.Max(0, width - 1))];
        return head + TextTable.ShortenMiddle(step.What, room, (room - 3) / 2);
    }

    private void Draw(string bar)
    {
        // Pad over a longer previous bar instead of clearing first: no flicker.
        string pad = _drawn is not null && _drawn.Length > bar.Length ? new string(' ', _drawn.Length - bar.Length) : "";
        _writer.Write("\r" + bar + pad);
        _writer.Flush();
        _drawn = bar + pad;
    }
}
