// What auto needs to time a QDQ site as it runs: the isolated piece is DQ(x_q) -> ConvTranspose(DQ(W), DQ(B)?) -> Q
// with x_q (uint8/int8) in and y_q out, so the baseline is ONNX Runtime's fp32 ConvTranspose between dequantize and
// quantize passes and the QDQ portable lowering's Conv is fused into QLinearConv (the timer runs ORT_ENABLE_ALL).
// Candidates are checked within one output quantization step, and the cache key carries the quantization, so a float
// site's decision is never reused for a QDQ one (nor one QDQ site's for another with other scales or types).
using System.Globalization;
using System.Security.Cryptography;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>Isolation, input, output check and cache key of a QDQ site under auto (see the file header).</summary>
internal static class QdqAutoSite
{
    /// <summary>The quantized piece alone: x_q at <paramref name="xShape"/> in, the QuantizeLinear's y_q out, every constant it reads inline.</summary>
    public static ModelProto Isolate(ConvTransposeSite site, long[] xShape)
    {
        var q = site.Quantized!;
        string xq = q.InputDequantize.Input[0];
        var builder = new ModelBuilder("auto_qdq_candidate", site.Opset, Math.Max(site.Model.IrVersion, 4));
        builder.Input(xq, xShape, q.ActivationType);
        var nodes = new[] { q.InputDequantize, q.WeightDequantize, q.BiasDequantize, site.Node, q.OutputQuantize }.OfType<NodeProto>().ToList();
        var computed = nodes.SelectMany(n => n.Output).Append(xq).ToHashSet(StringComparer.Ordinal);
        var index = new GraphIndex(site.Model);
        var have = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in nodes.SelectMany(n => n.Input).Where(i => i.Length > 0 && !computed.Contains(i)))
        {
            if (!have.Add(name)) continue;
            // The matcher accepted only constants here (initializer or Constant node, never external weights).
            var t = (index.ConstantWeight(name) ?? throw new InvalidOperationException($"QDQ site: '{name}' is not constant")).Clone();
            t.Name = name;
            builder.Graph.Initializer.Add(ModelIO.InlineCopy(site.Model, t));
        }
        foreach (var n in nodes) builder.Graph.Node.Add(n.Clone());
        builder.Output(q.OutputQuantize.Output[0], null, q.ActivationType);
        return builder.Build();
    }

    /// <summary>Seeded uniform integers over the activation type's whole range.</summary>
    public static TensorValue RandomInput(ConvTransposeSite site, long[] shape, int seed)
    {
        var q = site.Quantized!;
        var rng = new Random(seed);
        var data = new byte[Tensors.ElementCount(shape)];
        rng.NextBytes(data);
        string name = q.InputDequantize.Input[0];
        return q.ActivationType == DataType.Int8
            ? new TensorValue(name, DataType.Int8, shape, Array.ConvertAll(data, b => unchecked((sbyte)b)))
            : new TensorValue(name, DataType.Uint8, shape, data);
    }

    /// <summary>Null when every output is within one quantization step of <paramref name="expected"/> (the verifier's rule), else why not.</summary>
    public static string? Mismatch(ConvTransposeSite site, IReadOnlyList<TensorValue> expected, IReadOnlyList<TensorValue> actual)
    {
        var q = site.Quantized!.OutputQuantize;
        var step = new QuantizedStep(1, 0, string.IsNullOrEmpty(q.Name) ? $"QuantizeLinear -> {q.Output[0]}" : q.Name);
        for (int i = 0; i < expected.Count; i++)
        {
            var a = i < actual.Count ? actual[i] : null;
            var plain = OutputComparer.Compare(expected[i].Name, expected[i], a, Tolerance.Default);
            var c = a is null ? plain : QuantizedOutputs.Judge(plain, expected[i], a, step);
            if (!c.Passed) return $"output mismatch, not timed: {c.Describe()}";
        }
        return null;
    }

    /// <summary>The quantization a decision depends on: activation type, input/output scale and zero point, weight and bias scales (hashed).</summary>
    public static string CacheKeyPart(ConvTransposeSite site)
    {
        var q = site.Quantized!;
        var index = new GraphIndex(site.Model);
        string Scalar(NodeProto n) => string.Join(",", n.Input.Skip(1).Select(i => Values(index, i)));
        return string.Join(";",
            $"qdq={q.ActivationType}",
            $"x={Scalar(q.InputDequantize)}",
            $"y={Scalar(q.OutputQuantize)}",
            $"w={(DataType)q.WeightValues.DataType}:{Hash(q.WeightScales)}:{Hash(q.WeightZeroPoints.Select(v => (float)v).ToArray())}",
            $"b={(q.BiasValues is null ? "none" : $"{(DataType)q.BiasValues.DataType}:{Hash(q.BiasScales!)}")}");
    }

    private static string Values(GraphIndex index, string name)
    {
        if (name.Length == 0) return "-";
        var t = index.ConstantWeight(name);
        if (t is null || ExternalData.IsExternal(t)) return "dynamic";
        string text = t.DataType == (int)DataType.Float
            ? string.Join(" ", Tensors.ToFloats(t).Select(v => v.ToString("R", CultureInfo.InvariantCulture)))
            : t.HasRawData ? Convert.ToHexString(t.RawData.Span) : string.Join(" ", t.Int32Data);
        return $"{(DataType)t.DataType}:{text}";
    }

    private static string Hash(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return values.Length.ToString(CultureInfo.InvariantCulture) + "#" + Convert.ToHexString(SHA256.HashData(bytes))[..16];
    }
}
