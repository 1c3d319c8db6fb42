using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>The quantization step of one graph output, read from the QuantizeLinear that produces it (or feeds its DequantizeLinear).</summary>
/// <param name="Step">One step in the output's units: the scale for a dequantized float output, 1 for a uint8/int8 output.</param>
/// <param name="Scale">The QuantizeLinear's scale (as read, for the report).</param>
/// <param name="Source">The QuantizeLinear node the step was read from.</param>
public sealed record QuantizedStep(double Step, double Scale, string Source);

/// <summary>
/// Outputs of a quantized model are compared by their quantization step, not by the float tolerance: integer
/// accumulation (QLinearConv) and float32 rounding before QuantizeLinear legitimately round a value that sits at a tie
/// to neighbouring steps. The rule: every element within one output step, at most 1% of elements one step off.
/// Applies to an output produced by DequantizeLinear of a QuantizeLinear (per-tensor scale), or produced by a
/// QuantizeLinear as uint8/int8. Anything else keeps the float rule.
/// </summary>
public static class QuantizedOutputs
{
    /// <summary>Share of elements that may be one step off.</summary>
    public const double MaxOffShare = 0.01;

    public static string Rule(string output, QuantizedStep q) =>
        $"quantized output '{output}': within one quantization step ({q.Step:G6}, scale of {q.Source}) with at most {MaxOffShare:P0} of elements one step off";

    /// <summary>The quantized outputs of <paramref name="model"/> and their steps; outputs the rule does not cover are absent.</summary>
    public static Dictionary<string, QuantizedStep> Find(ModelProto? model)
    {
        var result = new Dictionary<string, QuantizedStep>(StringComparer.Ordinal);
        if (model?.Graph is not { } g) return result;
        var producer = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var n in g.Node) foreach (var o in n.Output) producer.TryAdd(o, n);
        var inits = g.Initializer.GroupBy(t => t.Name).ToDictionary(t => t.Key, t => t.First(), StringComparer.Ordinal);
        foreach (var o in g.Output)
        {
            if (!producer.TryGetValue(o.Name, out var p) || !Ops.IsDefaultDomain(p.Domain)) continue;
            NodeProto? q = p.OpType == Ops.QuantizeLinear.OpType ? p
                : p.OpType == Ops.DequantizeLinear.OpType && producer.TryGetValue(p.Input[0], out var pq) && pq.OpType == Ops.QuantizeLinear.OpType ? pq
                : null;
            if (q is null || q.Input.Count < 2 || ScalarScale(inits, q.Input[1]) is not { } scale) continue;
            // The DequantizeLinear must read the same scale: its step is what the output moves by.
            double step = 1;
            if (p.OpType == Ops.DequantizeLinear.OpType)
            {
                if (p.Input.Count < 2 || ScalarScale(inits, p.Input[1]) is not { } dqScale) continue;
                step = dqScale;
            }
            result[o.Name] = new QuantizedStep(step, scale, string.IsNullOrEmpty(q.Name) ? $"QuantizeLinear -> {q.Output[0]}" : q.Name);
        }
        return result;
    }

    private static double? ScalarScale(Dictionary<string, TensorProto> inits, string name)
    {
        if (!inits.TryGetValue(name, out var t) || Tensors.ElementCount(t.Dims) != 1 || ExternalData.IsExternal(t)) return null;
        if (t.DataType != (int)DataType.Float) return null;
        float v = Tensors.ToFloats(t)[0];
        return float.IsFinite(v) && v > 0 ? v : null;
    }

    /// <summary>
    /// Applies the rule to an output the float comparison already checked for shape, type and NaN (<paramref name="plain"/>):
    /// passes when no element is more than one step (plus float32 rounding of the dequantized values) away and at most
    /// <see cref="MaxOffShare"/> of them differ at all.
    /// </summary>
    public static OutputComparison Judge(OutputComparison plain, TensorValue expected, TensorValue actual, QuantizedStep q)
    {
        if (plain.Problem is not null && plain.WorstIndex is null) return plain with { QuantizedRule = Rule(plain.Name, q) };
        if (plain.Problem is not null) return plain with { QuantizedRule = Rule(plain.Name, q), Passed = false };
        double[] e = Values(expected), a = Values(actual);
        // Two dequantized values one step apart differ by step up to float32 rounding of each (scale * integer).
        double slack = q.Step * (1 + 1e-5);
        long off = 0, beyond = 0;
        for (long i = 0; i < e.Length; i++)
        {
            double d = Math.Abs(a[i] - e[i]);
            if (d > slack) beyond++;
            else if (d > q.Step * 0.5) off++;
        }
        bool passed = beyond == 0 && off <= MaxOffShare * e.Length;
        string? problem = beyond > 0 ? $"{beyond} element(s) more than one quantization step ({q.Step:G4}) off"
            : !passed ? $"{off}/{e.Length} elements one step off, more than {MaxOffShare:P0}" : null;
        return plain with
        {
            Passed = passed, Mismatches = beyond + (passed ? 0 : off), Tolerance = new Tolerance(q.Step, 0), Problem = problem,
            QuantizedRule = Rule(plain.Name, q), StepsOff = off,
        };
    }

    private static double[] Values(TensorValue t) => t.Data switch
    {
        float[] f => Array.ConvertAll(f, v => (double)v),
        byte[] u => Array.ConvertAll(u, v => (double)v),
        sbyte[] s => Array.ConvertAll(s, v => (double)v),
        _ => throw new NotSupportedException($"tensor '{t.Name}': {t.ElementType} is not a quantized output type"),
    };

    /// <summary>The model a <see cref="ModelSource"/> holds, for reading its quantization steps; null where it is not loadable here.</summary>
    internal static ModelProto? Load(ModelSource source)
    {
        try
        {
            if (source.Model is not null) return source.Model;
            if (source.Bytes is not null) return ModelProto.Parser.ParseFrom(source.Bytes);
            if (source.Path is not null && new FileInfo(source.Path).Length < int.MaxValue) return ModelIO.Load(source.Path);
        }
        catch (Exception e) when (e is IOException or ModelFormatException or Google.Protobuf.InvalidProtocolBufferException) { }
        return null;
    }
}
