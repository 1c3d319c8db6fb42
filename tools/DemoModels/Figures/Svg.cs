using System.Globalization;
using System.Net;
using System.Text;

namespace OnnxDeconv.DemoModels.Figures;

/// <summary>A minimal SVG writer: invariant-culture numbers and a fixed element order, so figures regenerate byte-identically.</summary>
internal sealed class Svg
{
    private readonly StringBuilder _sb = new();

    public Svg(double width, double height)
    {
        Line($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{N(width)}\" height=\"{N(height)}\" viewBox=\"0 0 {N(width)} {N(height)}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">");
        Rect(0, 0, width, height, "#ffffff", null);
    }

    public void Rect(double x, double y, double w, double h, string fill, string? stroke, double strokeWidth = 1, string? dash = null, double rx = 0)
    {
        var s = stroke is null ? "" : $" stroke=\"{stroke}\" stroke-width=\"{N(strokeWidth)}\"";
        var d = dash is null ? "" : $" stroke-dasharray=\"{dash}\"";
        var r = rx > 0 ? $" rx=\"{N(rx)}\"" : "";
        Line($"<rect x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(w)}\" height=\"{N(h)}\"{r} fill=\"{fill}\"{s}{d}/>");
    }

    public void LineSeg(double x1, double y1, double x2, double y2, string stroke, double width = 1)
    {
        Line($"<line x1=\"{N(x1)}\" y1=\"{N(y1)}\" x2=\"{N(x2)}\" y2=\"{N(y2)}\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\"/>");
    }

    public void Text(double x, double y, string text, double size = 12, string anchor = "start", string fill = "#222222", bool bold = false, bool italic = false)
    {
        var b = bold ? " font-weight=\"bold\"" : "";
        var i = italic ? " font-style=\"italic\"" : "";
        Line($"<text x=\"{N(x)}\" y=\"{N(y)}\" font-size=\"{N(size)}\" text-anchor=\"{anchor}\" fill=\"{fill}\"{b}{i}>{WebUtility.HtmlEncode(text)}</text>");
    }

    public override string ToString() => _sb + "</svg>\n";

    private void Line(string s) => _sb.Append(s).Append('\n');

    public static string N(double v) => Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);
}
