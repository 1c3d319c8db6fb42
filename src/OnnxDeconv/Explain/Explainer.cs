using System.Globalization;
using System.Text;
using OnnxDeconv.Geometry;

namespace OnnxDeconv.Explain;

/// <summary>
/// Why a ConvTranspose has the output size it has (DESIGN.md section 1): pure functions from the resolved geometry
/// to an <see cref="Explanation"/>; the CLI only renders it.
/// </summary>
public static class Explainer
{
    /// <summary>Names of the PyTorch-style arguments, used in error messages (GeometryException.Attribute).</summary>
    public const string ArgInput = "input", ArgKernel = "kernel", ArgStride = "stride", ArgPadding = "padding",
        ArgOutputPadding = "output_padding", ArgDilation = "dilation";

    // The picture's cells fit 80 columns with the indent, the row label and the outcome ('  (removed by pads)').
    private const int MaxPictureWidth = 48;
    private const int MaxPictureRows = 9;
    // Bounds that keep hostile geometries (strides or lengths of 2^33 and more) from looping or allocating for ever.
    private const long MaxPictureCells = 4096;
    private const long MaxListedPreimages = 64;

    /// <summary>
    /// Explains PyTorch-style arguments (ConvTransposeNd(kernel, stride, padding, output_padding, dilation) on input
    /// lengths <paramref name="input"/>). Each array has one value per axis or a single value used for every axis.
    /// Throws <see cref="GeometryException"/> whose Attribute is the PyTorch argument name.
    /// </summary>
    public static Explanation FromPyTorch(long[] input, long[] kernel, long[]? stride = null, long[]? padding = null,
        long[]? outputPadding = null, long[]? dilation = null)
    {
        if (input.Length == 0) throw new GeometryException(ArgInput, "input needs at least one length");
        int r = input.Length;
        long[] k = Broadcast(ArgKernel, kernel, r);
        long[] s = Broadcast(ArgStride, stride ?? [1], r);
        long[] p = Broadcast(ArgPadding, padding ?? [0], r);
        long[] op = Broadcast(ArgOutputPadding, outputPadding ?? [0], r);
        long[] d = Broadcast(ArgDilation, dilation ?? [1], r);
        for (int i = 0; i < r; i++)
        {
            Positive(ArgInput, input, i);
            Positive(ArgKernel, k, i);
            Positive(ArgStride, s, i);
            Positive(ArgDilation, d, i);
            if (p[i] < 0) throw new GeometryException(ArgPadding, $"padding{At(i, r)} is {p[i]}; must be >= 0");
            if (op[i] < 0) throw new GeometryException(ArgOutputPadding, $"output_padding{At(i, r)} is {op[i]}; must be >= 0");
            long limit = Math.Max(s[i], d[i]);
            if (op[i] >= limit)
                throw new GeometryException(ArgOutputPadding,
                    $"output_padding{At(i, r)} is {op[i]}; must be smaller than max(stride, dilation) = {limit} " +
                    "(output_padding only selects among the input sizes a Conv with this stride maps to the same length)");
            long full = s[i] * (input[i] - 1) + d[i] * (k[i] - 1) + 1 + op[i];
            if (full - 2 * p[i] <= 0)
                throw new GeometryException(ArgPadding,
                    $"padding{At(i, r)} = {p[i]} removes {2 * p[i]} of the {full} positions of the full output; nothing is left");
        }
        var attrs = new ConvTransposeAttributes
        {
            KernelShape = k,
            Strides = s,
            Dilations = d,
            Pads = [.. p, .. p],
            OutputPadding = op,
        };
        var geometry = ConvTransposeGeometry.Resolve(attrs, [1, 1, .. input], [1, 1, .. k]);
        return Explain(geometry);
    }

    /// <summary>Explains a resolved geometry (from a model node or from <see cref="FromPyTorch"/>).</summary>
    public static Explanation Explain(ConvTransposeGeometry geometry)
    {
        var axes = geometry.Axes.Select((a, i) => ExplainAxis(a, i)).ToList();
        bool ortAccepts = !geometry.OrtRejectsOutputPadding;
        string note = ortAccepts
            ? "accepts it (output_padding < stride on every axis)."
            : "REFUSES it: the ONNX spec allows output_padding < max(stride, dilation), but ONNX Runtime requires output_padding < stride (" +
              string.Join(", ", geometry.Axes.Select((a, i) => (a, i)).Where(t => t.a.OutputPadding >= t.a.Stride)
                  .Select(t => $"axis {t.i}: output_padding {t.a.OutputPadding} >= stride {t.a.Stride}")) + ").";
        return new Explanation
        {
            Geometry = geometry,
            Axes = axes,
            OnnxPads = geometry.Pads,
            OnnxOutputPadding = geometry.Axes.Select(a => a.OutputPadding).ToArray(),
            OnnxStrides = geometry.Axes.Select(a => a.Stride).ToArray(),
            OnnxDilations = geometry.Axes.Select(a => a.Dilation).ToArray(),
            OnnxKernelShape = geometry.Axes.Select(a => a.Kernel).ToArray(),
            PyTorchExpressible = geometry.Axes.All(a => a.PadBegin == a.PadEnd && a.PadBegin >= 0),
            OrtAccepts = ortAccepts,
            OrtNote = note,
            Costs = ComputeViews.Layer(geometry, [.. axes.Select(x => x.Compute)]),
        };
    }

    public static AxisExplanation ExplainAxis(AxisGeometry a, int axis)
    {
        long dk = a.Dilation * (a.Kernel - 1);
        bool symmetric = a.PadBegin == a.PadEnd;
        string padSym = symmetric ? "2p" : "(pb+pe)";
        string padNum = symmetric ? $"2*{a.PadBegin}" : $"({a.PadBegin}+{Paren(a.PadEnd)})";
        string formula = $"O = s*(I-1) - {padSym} + d*(k-1) + op + 1";
        string filled = $"{a.Stride}*({a.Input}-1) - {padNum} + {a.Dilation}*({a.Kernel}-1) + {a.OutputPadding} + 1 = {a.Output}";

        InverseConv? inverse = null;
        RoundTrip? roundTrip = null;
        if (a.PadBegin >= 0 && a.PadEnd >= 0)
        {
            long baseOut = a.Output - a.OutputPadding;
            var pre = new List<ConvPreimage>();
            for (long j = 0; j < Math.Min(a.Stride, MaxListedPreimages); j++)
            {
                long l = baseOut + j;
                if (l >= 1 && ConvOutput(l, a.Kernel, a.Stride, a.PadBegin, a.PadEnd, a.Dilation) == a.Input)
                    pre.Add(new ConvPreimage(l, j, j == a.OutputPadding));
            }
            inverse = new InverseConv(a.Kernel, a.Stride, a.PadBegin, a.PadEnd, a.Dilation, pre);

            long c = ConvOutput(a.Input, a.Kernel, a.Stride, a.PadBegin, a.PadEnd, a.Dilation);
            if (c >= 1)
            {
                long back = a.Stride * (c - 1) - a.PadBegin - a.PadEnd + dk + 1;
                if (back >= 1) roundTrip = new RoundTrip(a.Input, c, back, a.Input - back);
            }
        }

        long pictureInput = PictureInput(a);
        return new AxisExplanation
        {
            Axis = axis,
            Geometry = a,
            Formula = formula,
            FormulaFilled = filled,
            FullLength = a.FullLength,
            ZeroInsertedLength = a.ZeroInsertedLength,
            ImplicitPadBegin = a.ImplicitPadBegin,
            ImplicitPadEnd = a.ImplicitPadEnd,
            InverseConv = inverse,
            RoundTrip = roundTrip,
            Picture = CanvasLength(Shorten(a, pictureInput)) > MaxPictureCells
                ? [$"(no picture: the zero-insertion view is {CanvasLength(Shorten(a, pictureInput))} cells long even for I={pictureInput}, too long to draw)"]
                : CanvasLength(Shorten(a, pictureInput)) * CellWidth(Shorten(a, pictureInput)) > MaxPictureWidth
                ? [$"(no picture: the zero-insertion view is {CanvasLength(Shorten(a, pictureInput))} cells long even for I={pictureInput}, wider than 80 columns; explain --svg draws it)"]
                : Picture(Shorten(a, pictureInput)),
            PictureInput = pictureInput,
            Why = Why(a),
            Compute = ComputeViews.Axis(a),
            Collapses = Collapses(a, inverse, roundTrip),
        };
    }

    /// <summary>The floor of the Conv length formula written out where two (or more) lengths give one.</summary>
    private static List<string> Collapses(AxisGeometry a, InverseConv? inverse, RoundTrip? roundTrip)
    {
        var lines = new List<string>();
        string F(long l) => ComputeViews.ConvFloor(l, a.Kernel, a.Stride, a.PadBegin, a.PadEnd, a.Dilation);
        if (roundTrip is { OutputPaddingNeeded: not 0 } rt)
            lines.Add($"{F(rt.ConvInput)} = {rt.ConvOutput} = {F(rt.TransposeOutput)}");
        if (inverse is { Preimages.Count: > 1 } inv)
            lines.Add($"{F(inv.Preimages[0].ConvInput)} = {a.Input} = {string.Join(" = ", inv.Preimages.Skip(1).Select(p => F(p.ConvInput)))}");
        return lines;
    }

    /// <summary>Conv output length floor((L + pb + pe - d*(k-1) - 1)/s) + 1, or 0 when the padded input is shorter than the dilated kernel.</summary>
    public static long ConvOutput(long length, long kernel, long stride, long padBegin, long padEnd, long dilation)
    {
        long span = length + padBegin + padEnd - dilation * (kernel - 1) - 1;
        return span < 0 ? 0 : span / stride + 1;
    }

    private static string Why(AxisGeometry a)
    {
        long full = a.FullLength;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"Every input pixel i writes k={a.Kernel} outputs, at i*s + j*d for j = 0..k-1 (s={a.Stride}, d={a.Dilation}), so the full output is s*(I-1) + d*(k-1) + 1 + op = {full}. ");
        if (a.PadBegin == 0 && a.PadEnd == 0)
            sb.Append("No padding: all of it is kept");
        else if (a.PadEnd >= 0)
            sb.Append(CultureInfo.InvariantCulture,
                $"Padding does not add zeros here as it does in Conv: it removes {a.PadBegin} position(s) at the begin and {a.PadEnd} at the end of that full output, so O = {full} - {a.PadBegin} - {a.PadEnd} = {a.Output}");
        else
            sb.Append(CultureInfo.InvariantCulture,
                $"output_shape asks for more than that: {a.PadBegin} position(s) are removed at the begin and {-a.PadEnd} zero (bias-only) position(s) are appended at the end, so O = {a.Output}");
        if (a.PadBegin != 0 || a.PadEnd != 0)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $". In the zero-insertion view the implicit zero border d*(k-1)-p is {a.ImplicitPadBegin} at the begin and {a.ImplicitPadEnd} at the end (incl. output_padding) instead of {a.Dilation * (a.Kernel - 1)} without padding");
            sb.Append(a.ImplicitPadBegin < 0 || a.ImplicitPadEnd < 0 ? "; a negative border crops input cells." : ".");
        }
        else sb.Append('.');
        return sb.ToString();
    }

    /// <summary>A short input keeps the picture narrow; the borders (padding, crop) look the same for any length.</summary>
    private static long PictureInput(AxisGeometry a)
    {
        long i = Math.Min(a.Input, 6);
        while (i > 2 && CanvasLength(Shorten(a, i)) * CellWidth(Shorten(a, i)) > MaxPictureWidth) i--;
        // Output must stay positive for the shortened input; heavy padding needs the real length.
        // (the smallest such i, computed rather than searched: the input may be billions long)
        if (a.Output >= 1 && a.Stride >= 1) i = Math.Max(i, Math.Min(a.Input, a.Input - (a.Output - 1) / a.Stride));
        return i;
    }

    /// <summary>The same axis with a shorter input: each input pixel less removes one stride of output.</summary>
    private static AxisGeometry Shorten(AxisGeometry a, long input) =>
        a with { Input = input, Output = a.Output - a.Stride * (a.Input - input) };

    private static long Rows(AxisGeometry a) => Math.Max(a.FullLength, a.PadBegin + a.Output);
    private static long CanvasLength(AxisGeometry a) => Rows(a) + a.Dilation * (a.Kernel - 1);

    private static int CellWidth(AxisGeometry a)
    {
        int x = ("x" + (a.Input - 1).ToString(CultureInfo.InvariantCulture)).Length;
        int w = ("w" + (a.Kernel - 1).ToString(CultureInfo.InvariantCulture)).Length;
        return Math.Max(x, w) + 1;
    }

    /// <summary>
    /// The zero-insertion view of one axis: input spread by the stride with zeros between, implicit padding d*(k-1)
    /// (minus pads; '~' marks cells the pads remove), the flipped kernel sliding with stride 1, and which window
    /// positions survive as outputs.
    /// </summary>
    private static IReadOnlyList<string> Picture(AxisGeometry a)
    {
        long dk = a.Dilation * (a.Kernel - 1);
        long rows = Rows(a);
        long canvas = CanvasLength(a);
        long zeroInserted = a.ZeroInsertedLength;
        int w = CellWidth(a);
        const int labelWidth = 8;
        string Cell(string s) => s.PadLeft(w);

        var cells = new StringBuilder();
        var crop = new StringBuilder();
        bool anyCrop = false;
        long cropEndFrom = a.PadEnd > 0 ? canvas - a.PadEnd : canvas;
        for (long c = 0; c < canvas; c++)
        {
            long j = c - dk;
            string label = j >= 0 && j < zeroInserted
                ? (j % a.Stride == 0 ? "x" + (j / a.Stride).ToString(CultureInfo.InvariantCulture) : "0")
                : ".";
            cells.Append(Cell(label));
            bool removed = c < a.PadBegin || c >= cropEndFrom;
            anyCrop |= removed;
            crop.Append(Cell(removed ? "~" : ""));
        }

        var lines = new List<string>
        {
            "x = input, 0 = inserted zero (s-1 per gap), . = implicit zero padding, ~ = removed by pads, w = kernel tap (flipped), - = dilation gap",
            "cells".PadRight(labelWidth) + cells,
        };
        if (anyCrop) lines.Add("pads".PadRight(labelWidth) + crop.ToString().TrimEnd());

        // Long axes: keep the rows around the begin and end borders, where padding and cropping act.
        var rowIndices = new List<long>();
        long firstKept = Math.Max(0, a.PadBegin), lastKept = Math.Min(rows - 1, a.PadBegin + a.Output - 1);
        var wanted = rows <= MaxPictureRows
            ? Enumerable.Range(0, (int)rows).Select(x => (long)x)
            : new[] { 0, firstKept - 1, firstKept, firstKept + 1, lastKept - 1, lastKept, lastKept + 1, rows - 1 }.Where(x => x >= 0 && x < rows);
        foreach (long f in wanted.Distinct().Order())
        {
            if (rowIndices.Count > 0 && f != rowIndices[^1] + 1) rowIndices.Add(-1);
            rowIndices.Add(f);
        }
        foreach (long f in rowIndices)
        {
            if (f < 0) { lines.Add("".PadRight(labelWidth) + "  ..."); continue; }
            var row = new StringBuilder();
            long next = f;
            int tap = (int)a.Kernel - 1;
            for (long c = 0; c < canvas; c++)
            {
                if (c == next && tap >= 0)
                {
                    row.Append(Cell("w" + tap.ToString(CultureInfo.InvariantCulture)));
                    tap--;
                    next += a.Dilation;
                }
                else if (c > f && tap >= 0) row.Append(Cell("-"));
                else row.Append(Cell(""));
                if (tap < 0 && c >= next - a.Dilation) break;
            }
            long o = f - a.PadBegin;
            string outcome = o >= 0 && o < a.Output ? $"-> y{o}" : "(removed by pads)";
            lines.Add("".PadRight(labelWidth) + row.ToString().PadRight((int)canvas * w) + "  " + outcome);
        }
        lines.Add("output".PadRight(labelWidth) + string.Join(" ", Enumerable.Range(0, (int)Math.Min(a.Output, 12)).Select(i => $"y{i}"))
            + (a.Output > 12 ? " ..." : "") + $"  (O = {a.Output})");
        return lines;
    }

    private static long[] Broadcast(string name, long[] values, int rank)
    {
        if (values.Length == rank) return values;
        if (values.Length == 1) return Enumerable.Repeat(values[0], rank).ToArray();
        throw new GeometryException(name, rank == 1
            ? $"{name} has {values.Length} values; give one value (the input has one axis)"
            : $"{name} has {values.Length} values; give 1 or {rank} (one per input axis)");
    }

    private static void Positive(string name, long[] v, int i)
    {
        if (v[i] <= 0) throw new GeometryException(name, $"{name}{At(i, v.Length)} is {v[i]}; must be positive");
    }

    private static string At(int i, int rank) => rank == 1 ? "" : $"[{i}]";
    private static string Paren(long v) => v < 0 ? $"({v})" : v.ToString(CultureInfo.InvariantCulture);
}
