using System.Globalization;
using System.Numerics;
using System.Text.Json.Nodes;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.Explain;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// explain's text layout (every line within 80 columns: labelled items wrap with a hanging indent) and the "how it is
/// computed" part: polyphase phases, GEMM + col2im, zero insertion, and the whole layer's cost of each.
/// </summary>
internal static class ExplainText
{
    public const int Width = 80;
    private const int LabelWidth = 16;

    /// <summary>"  label           text..." wrapped to 80 columns, continuation lines under the text.</summary>
    public static void Item(TextWriter o, string label, string text, int indent = 2)
    {
        string pad = new(' ', indent), hang = new(' ', indent + LabelWidth);
        var lines = TextTable.Wrap(text, Width - hang.Length);
        o.WriteLine(pad + label.PadRight(LabelWidth) + lines[0]);
        foreach (var l in lines.Skip(1)) o.WriteLine(hang + l);
    }

    /// <summary>A sentence wrapped to 80 columns.</summary>
    public static void Para(TextWriter o, string text, int indent = 0)
    {
        foreach (var l in TextTable.Wrap(text, Width - indent)) o.WriteLine(new string(' ', indent) + l);
    }

    public static void Compute(TextWriter o, AxisExplanation ax)
    {
        var a = ax.Geometry;
        var c = ax.Compute;
        foreach (var line in ax.Collapses) Item(o, "the floor", line + " (Conv drops the remainder of the division by s)");
        o.WriteLine("  how it is computed (this axis; the layer multiplies the axes and channels)");
        Item(o, "polyphase", $"{Plural(c.PhaseCount, "phase")} (outputs o with o mod {a.Stride} = r), each a stride-1 " +
            "correlation of the ORIGINAL input with its own taps: nothing is grown, no inserted zero is multiplied" +
            (a.Stride > 1 ? "" : " (stride 1: one phase, a plain correlation)") + ":");
        foreach (var p in c.Phases)
        {
            string outputs = $"{Plural(p.Outputs, "output")} y[{Index(a.Stride, p.Residue)}]";
            Item(o, $"  phase {p.Residue}", p.TapCount == 0
                ? $"{outputs}: no tap lands here, so they are 0 (bias only)"
                : $"{outputs} = {PhaseFormula(p)}");
        }
        if (c.PhaseCount > c.Phases.Count) Item(o, "", $"... {c.PhaseCount - c.Phases.Count} more phases");
        Item(o, "", $"MACs {Num(c.PolyphaseMacs)}{(c.PolyphaseExact ? "" : " (about K*O/s)")} (taps x outputs of their phase" +
            (c.PolyphaseExact && c.PolyphaseMacs > c.GemmMacs ? $"; I*k = {Num(c.GemmMacs)} products, the other {Num(c.PolyphaseMacs - c.GemmMacs)} read the zero border" : "") +
            "), extra memory none");
        Item(o, "GEMM + col2im", $"what ONNX Runtime's CPU ConvTranspose and PyTorch do: one GEMM makes a column buffer of " +
            $"k*I = {a.Kernel}*{a.Input} = {Num(c.ColumnLength)} values, then col2im adds each into y[i*s + j*d - p]: " +
            $"MACs {Num(c.GemmMacs)}, extra memory {Num(c.ColumnLength)}");
        Item(o, "zero insertion", $"grows the input to {a.ZeroInsertedLength} (s-1 zeros between neighbours), pads it to " +
            $"{c.GrownLength}, then all k taps at every output: MACs O*k = {a.Output}*{a.Kernel} = {Num(c.ZeroInsertionMacs)}" +
            $"{Ratio(c.ZeroInsertionMacs, c.PolyphaseMacs)}, extra memory {c.GrownLength} (the grown input)");
    }

    public static void Costs(TextWriter o, Explanation e)
    {
        var g = e.Geometry;
        o.WriteLine();
        Para(o, $"Cost of the whole layer (batch {g.Batch}, Cin/group {g.InChannelsPerGroup}, Cout {g.OutChannels}; extra memory in floats):");
        var t = new TextTable("method", "MACs", "extra memory", "what the extra memory is");
        foreach (var c in e.Costs) t.AddRow(c.Method, Num(c.Macs) + Ratio(c.Macs, e.Costs[0].Macs), Num(c.ExtraFloats), c.Extra);
        var console = CliSupport.Console(o);
        console.Profile.Width = Width;
        console.Write(t);
        Para(o, "Without growing the input: yes. The polyphase form computes every output phase straight from the original " +
            "input (zero-free), with no column buffer; `optimize` writes it as standard ONNX ops (--target portable) or " +
            "as the OnnxDeconv kernel (--target plugin). The figures: docs/how-it-works.md.");
    }

    public static JsonObject Json(AxisCompute c) => new()
    {
        ["phaseCount"] = c.PhaseCount,
        ["phases"] = new JsonArray([.. c.Phases.Select(p => (JsonNode?)new JsonObject
        {
            ["residue"] = p.Residue,
            ["outputs"] = p.Outputs,
            ["tapCount"] = p.TapCount,
            ["taps"] = new JsonArray([.. p.Taps.Select(t => (JsonNode?)new JsonObject { ["tap"] = t.Tap, ["inputOffset"] = t.InputOffset })]),
        })]),
        ["polyphaseMacs"] = Number(c.PolyphaseMacs),
        ["polyphaseExact"] = c.PolyphaseExact,
        ["gemmMacs"] = Number(c.GemmMacs),
        ["columnBuffer"] = Number(c.ColumnLength),
        ["zeroInsertionMacs"] = Number(c.ZeroInsertionMacs),
        ["grownLength"] = c.GrownLength,
    };

    public static JsonArray Json(IEnumerable<LayerCost> costs) => new([.. costs.Select(c => (JsonNode?)new JsonObject
    {
        ["method"] = c.Method,
        ["macs"] = Number(c.Macs),
        ["extraFloats"] = Number(c.ExtraFloats),
        ["extra"] = c.Extra,
    })]);

    /// <summary>A JSON number when it fits a long (hostile geometries can exceed it: then a string of digits).</summary>
    private static JsonNode Number(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? JsonValue.Create((long)v) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture));

    private static string Num(BigInteger v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Ratio(BigInteger v, BigInteger reference) =>
        reference > 0 && v != reference ? $" ({((double)v / (double)reference).ToString("0.00", CultureInfo.InvariantCulture)}x)" : "";

    private static string Plural(long n, string word) => $"{n.ToString(CultureInfo.InvariantCulture)} {word}{(n == 1 ? "" : "s")}";

    /// <summary>"2m+1", "2m", "m": the outputs of phase <paramref name="residue"/>.</summary>
    public static string Index(long stride, long residue) =>
        (stride == 1 ? "m" : $"{stride}m") + (residue == 0 ? "" : $"+{residue}");

    /// <summary>"w4*x[m-2] + w2*x[m-1] + w0*x[m]" (and "+ ... (N taps)" past the listed ones).</summary>
    public static string PhaseFormula(Phase p) =>
        string.Join(" + ", p.Taps.Select(t => $"w{t.Tap}*x[{(t.InputOffset == 0 ? "m" : t.InputOffset > 0 ? $"m+{t.InputOffset}" : $"m{t.InputOffset}")}]"))
        + (p.TapCount > p.Taps.Count ? $" + ... ({p.TapCount} taps)" : "");
}
