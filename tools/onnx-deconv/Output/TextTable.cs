using Spectre.Console;
using Spectre.Console.Rendering;

namespace OnnxDeconv.Cli.Output;

/// <summary>
/// A table of plain text that fits the width it is rendered at. In order of preference: every column at its natural
/// width; columns whose value is the same in every row folded into one line under the table; columns narrowed,
/// wrapping at word boundaries (names marked with <see cref="Names"/> are shortened in the middle instead, so both
/// ends stay readable); and when even that does not fit, one small key/value table per row. Words are never split
/// unless a single word is wider than the whole column.
/// </summary>
internal sealed class TextTable(params string[] headers) : IRenderable
{
    private readonly string[] _headers = headers;
    private readonly List<string[]> _rows = [];
    private readonly HashSet<int> _names = [];

    public string? Title { get; set; }
    public bool ShowHeaders { get; set; } = true;
    public TableBorder Border { get; set; } = TableBorder.Rounded;
    public int Count => _rows.Count;

    /// <summary>Columns holding identifiers (node names): shortened in the middle ("/main/...Transpose") when narrowed.</summary>
    public TextTable Names(params string[] columns)
    {
        foreach (var c in columns) _names.Add(Array.IndexOf(_headers, c) is >= 0 and var i ? i : throw new ArgumentException($"no column '{c}'"));
        return this;
    }

    public void AddRow(params string?[] cells) =>
        _rows.Add([.. Enumerable.Range(0, _headers.Length).Select(i => i < cells.Length ? (cells[i] ?? "").Replace("\r", "") : "")]);

    public Measurement Measure(RenderOptions options, int maxWidth) => Layout(maxWidth).Measure(options, maxWidth);

    public IEnumerable<Segment> Render(RenderOptions options, int maxWidth) => Layout(maxWidth).Render(options, maxWidth);

    /// <summary>Border, padding and separators of a table with <paramref name="columns"/> columns.</summary>
    internal static int Overhead(int columns) => 3 * columns + 1;

    internal IRenderable Layout(int width)
    {
        var all = Enumerable.Range(0, _headers.Length).ToList();
        int[] natural = [.. all.Select(Natural)];
        if (natural.Sum() + Overhead(all.Count) <= width) return Build(all, natural, null, width);

        // Same value in every row (e.g. dilations [1, 1] everywhere): say it once under the table.
        var kept = all;
        string? folded = null;
        if (_rows.Count >= 2 && ShowHeaders)
        {
            var constant = all.Skip(1).Where(i => _rows.All(r => r[i] == _rows[0][i])).ToList();
            if (constant.Count > 0)
            {
                kept = [.. all.Except(constant)];
                folded = "same in every row: " + string.Join("; ", constant.Select(i =>
                    $"{_headers[i]} {(_rows[0][i].Length == 0 ? "(empty)" : _rows[0][i].Replace('\n', ' '))}"));
            }
        }
        // Narrow columns make tall rows: keep the table only while it is no longer than the rows as key/value lists.
        if (Fit(kept, width) is { } widths && TableHeight(kept, widths) <= RecordsHeight(kept, width)) return Build(kept, widths, folded, width);
        return Records(kept, folded, width);
    }

    private int Natural(int column) =>
        Lines(ShowHeaders ? _headers[column] : "").Concat(_rows.SelectMany(r => Lines(r[column]))).Max(l => l.Length);

    /// <summary>Narrowest width a column can take without splitting words (names: a readable shortened form).</summary>
    private int Minimum(int column)
    {
        int natural = Natural(column);
        int header = ShowHeaders ? LongestWord(_headers[column]) : 0;
        if (_names.Contains(column))
        {
            int w = Math.Min(natural, Math.Max(NameMinimum, header));
            while (w < natural && !Distinct(column, w)) w++;
            return w;
        }
        return Math.Min(natural, Math.Max(Math.Max(1, header), _rows.Select(r => LongestWord(r[column])).DefaultIfEmpty(1).Max()));
    }

    private const int NameMinimum = 16;

    private int TableHeight(IReadOnlyList<int> columns, int[] widths) =>
        (ShowHeaders ? columns.Select((c, j) => Lines(Cell(_headers[c], widths[j])).Length).Max() + 1 : 0) + 2
        + _rows.Sum(r => columns.Select((c, j) => Lines(Cell(c, r[c], widths[j])).Length).Max());

    private int KeyWidth(IReadOnlyList<int> columns) => columns.Max(i => _headers[i].Length);

    private int ValueWidth(IReadOnlyList<int> columns, int width) => Math.Max(1, width - Overhead(2) - KeyWidth(columns));

    private int RecordsHeight(IReadOnlyList<int> columns, int width) =>
        _rows.Sum(r => 2 + columns.Where(i => r[i].Length > 0).Sum(i => Lines(Cell(i, r[i], ValueWidth(columns, width))).Length));

    private static int LongestWord(string text) =>
        text.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).SelectMany(Pieces).Select(w => w.Length).DefaultIfEmpty(0).Max();

    /// <summary>A word's pieces where a line may break inside it: after '/' and '+' ("a/b+c" = "a/", "b+", "c").</summary>
    private static List<string> Pieces(string word)
    {
        var pieces = new List<string>();
        int start = 0;
        for (int i = 0; i < word.Length - 1; i++)
            if (word[i] is '/' or '+') { pieces.Add(word[start..(i + 1)]); start = i + 1; }
        pieces.Add(word[start..]);
        return pieces;
    }

    /// <summary>
    /// Column widths that fit <paramref name="width"/>, or null when the minimums do not: the widest columns give way
    /// first (every column is capped at the largest common width that fits, never below its minimum), so short
    /// columns keep their natural width and only long text wraps.
    /// </summary>
    private int[]? Fit(IReadOnlyList<int> columns, int width)
    {
        int[] min = [.. columns.Select(Minimum)], nat = [.. columns.Select(Natural)];
        int avail = width - Overhead(columns.Count);
        if (min.Sum() > avail) return null;
        // Names are what a reader looks rows up by: the other columns give way first.
        bool[] name = [.. columns.Select(_names.Contains)];
        int[] Capped(int cap, bool names) => [.. nat.Select((n, i) => name[i] && !names ? n : Math.Max(min[i], Math.Min(n, cap)))];
        bool names = Capped(0, names: false).Sum() > avail;
        int cap = nat.Max();
        while (cap > 0 && Capped(cap, names).Sum() > avail) cap--;
        var w = Capped(cap, names);
        // What the cap leaves over goes to the columns still short, left to right.
        int left = avail - w.Sum();
        for (int i = 0; i < w.Length && left > 0; i++)
        {
            int add = Math.Min(left, nat[i] - w[i]);
            if (add > 0) { w[i] += add; left -= add; }
        }
        return w;
    }

    private IRenderable Build(IReadOnlyList<int> columns, int[] widths, string? folded, int width)
    {
        var table = new Table().Border(Border);
        if (!ShowHeaders) table.HideHeaders();
        for (int j = 0; j < columns.Count; j++)
            table.AddColumn(new TableColumn(new Text(ShowHeaders ? Cell(_headers[columns[j]], widths[j]) : "")) { Width = widths[j] });
        foreach (var r in _rows)
            table.AddRow([.. columns.Select((c, j) => (IRenderable)new Text(Cell(c, r[c], widths[j])))]);
        return WithTitle(width, folded is null ? [table] : [table, new Text(string.Join("\n", Wrap(folded, width)))]);
    }

    /// <summary>Too many columns for the width: each row as its own two-column table of header and value.</summary>
    private IRenderable Records(IReadOnlyList<int> columns, string? folded, int width)
    {
        int key = KeyWidth(columns), value = ValueWidth(columns, width);
        var parts = new List<IRenderable>();
        foreach (var r in _rows)
        {
            var t = new Table().Border(Border).HideHeaders();
            t.AddColumn(new TableColumn(new Text("")) { Width = key });
            t.AddColumn(new TableColumn(new Text("")) { Width = value });
            foreach (int i in columns.Where(i => r[i].Length > 0))
                t.AddRow(new Text(Cell(_headers[i], key)), new Text(Cell(i, r[i], value)));
            parts.Add(t);
        }
        if (folded is not null) parts.Add(new Text(string.Join("\n", Wrap(folded, width))));
        return WithTitle(width, parts);
    }

    private Rows WithTitle(int width, IEnumerable<IRenderable> parts) =>
        new(Title is null ? parts : [new Text(string.Join("\n", Wrap(Title, width))), .. parts]);

    private static string[] Lines(string text) => text.Split('\n');

    private string Cell(int column, string text, int width) => _names.Contains(column)
        ? string.Join("\n", Lines(text).Select(l => ShortenMiddle(l, width, Head(column, width))))
        : Cell(text, width);

    /// <summary>Text wrapped at spaces to <paramref name="width"/>.</summary>
    internal static string Cell(string text, int width) => string.Join("\n", Lines(text).SelectMany(l => Wrap(l, width)));

    private IEnumerable<string> NameLines(int column) => _rows.SelectMany(r => Lines(r[column])).Distinct(StringComparer.Ordinal);

    private bool Distinct(int column, int width)
    {
        int head = Head(column, width);
        var names = NameLines(column).ToList();
        return names.Select(n => ShortenMiddle(n, width, head)).Distinct(StringComparer.Ordinal).Count() == names.Count;
    }

    /// <summary>
    /// How much of the start of each name to keep at <paramref name="width"/>: half, unless another split keeps the
    /// column's names apart ("/main/main.0/ConvTranspose" and "/main/main.3/ConvTranspose" differ past the middle).
    /// </summary>
    private int Head(int column, int width)
    {
        int room = width - 3;
        if (room <= 0) return 0;
        var names = NameLines(column).ToList();
        int balanced = (room + 1) / 2;
        var splits = Enumerable.Range(0, room + 1).OrderBy(h => Math.Abs(h - balanced)).ThenByDescending(h => h);
        foreach (int h in splits)
            if (names.Select(n => ShortenMiddle(n, width, h)).Distinct(StringComparer.Ordinal).Count() == names.Count) return h;
        return balanced;
    }

    /// <summary>"/main/main.12/ConvTranspose" at 16 keeping 6: "/main/...nspose": the ends kept, "..." in place of the middle.</summary>
    internal static string ShortenMiddle(string text, int width, int head)
    {
        if (text.Length <= width) return text;
        if (width <= 3) return text[..width];
        head = Math.Clamp(head, 0, width - 3);
        int tail = width - 3 - head;
        return text[..head] + "..." + text[^tail..];
    }

    /// <summary>
    /// Greedy word wrap of each line at spaces; a word wider than the whole line breaks after a '/' or '+', and only a
    /// piece wider than the line is cut.
    /// </summary>
    internal static List<string> Wrap(string text, int width)
    {
        var lines = new List<string>();
        foreach (var paragraph in Lines(text))
        {
            var line = "";
            foreach (var word in paragraph.Split(' '))
            {
                if (line.Length > 0 && line.Length + 1 + word.Length <= width) { line += " " + word; continue; }
                if (line.Length > 0) lines.Add(line);
                line = "";
                if (word.Length <= width) { line = word; continue; }
                foreach (var piece in Pieces(word))
                {
                    var p = piece;
                    if (line.Length + p.Length > width && line.Length > 0) { lines.Add(line); line = ""; }
                    for (; p.Length > width; p = p[width..]) lines.Add(p[..width]);
                    line += p;
                }
            }
            lines.Add(line);
        }
        return lines;
    }
}
