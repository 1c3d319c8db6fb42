// Before:  DQ(x_q) ─ ConvTranspose(DQ(W int8), DQ(B int32)?) ─ Q ─ y_q ─ DQ ─ ...
// After:   DQ(x_q) ─ Conv(DQ(W' int8, axis 0), DQ(B' int32, axis 0)?; stride 1, Cout*prod(s) channels) ─ Q ─
//            DepthToSpace (uint8) | Reshape/Transpose/Reshape (int8: ORT's CPU DepthToSpace has no int8)
//            ─ Slice (crop) ─ y_q ─ (the original DQ) ─ ...
// W' holds the original int8 values, only rearranged into the phase-stacked layout (zero taps where a phase has
// fewer), each Conv channel carrying its output channel's scale and zero point; B' repeats each int32 bias per phase.
// No requantization: the Q after the Conv is the original Q's scale and zero point, so ONNX Runtime's QDQ transformer
// fuses DQ -> Conv -> Q into QLinearConv (int8 accumulation) and the interleave/crop move uint8/int8 values only.
using Google.Protobuf;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.Plan;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Lowering;

/// <summary>The portable lowering of a QDQ site (<see cref="ConvTransposeSite.Quantized"/>); see the file header.</summary>
internal static class QdqPortableLowering
{
    public static string? CanLower(ConvTransposeSite site)
    {
        try
        {
            _ = Prepare(site, name => name);
            return null;
        }
        catch (Exception e) when (e is LoweringException or Geometry.GeometryException or ArgumentException or OverflowException) { return e.Message; }
    }

    private static (TransposedConvPlan Plan, LoweringRequest Request) Prepare(ConvTransposeSite site, Func<string, string> uniqueName)
    {
        var q = site.Quantized!;
        var plan = TransposedConvPlanBuilder.Build(site.Geometry, hasBias: false, site.Attributes.OutputShape is not null);
        var request = new LoweringRequest
        {
            Input = site.Input, Output = q.OutputQuantize.Output[0], UniqueName = uniqueName, Opset = site.Opset,
            StaticSpatial = site.StaticSpatial, Form = PhaseForm.Combined,
            // Element type only steers the interleave: a half type selects Reshape/Transpose, which int8 needs.
            ElementType = q.ActivationType == DataType.Int8 ? DataType.Float16 : DataType.Float,
        };
        var choice = PortableLowering.Choose(plan, request);
        if (choice.Form != PhaseForm.Combined)
            throw new LoweringException("QDQ site: the phases need separate Convs (one Conv would waste too many zero taps); only the one-Conv form keeps a single QuantizeLinear");
        return (plan, request);
    }

    public static LoweredSite Lower(ConvTransposeSite site, GraphEditor editor)
    {
        var q = site.Quantized!;
        string stem = string.IsNullOrEmpty(site.Node.Name) ? site.Output : site.Node.Name;
        string Unique(string s) => editor.UniqueName($"{stem}/{s}");
        var (plan, request) = Prepare(site, Unique);
        sbyte[] w8 = Int8Values(q.WeightValues);
        var lowered = PortableLowering.Lower(plan, Array.ConvertAll(w8, v => (float)v), [], request);
        var conv = lowered.Nodes[0];
        if (conv.OpType != Ops.Conv.OpType) throw new LoweringException($"QDQ site: expected the lowering to start with Conv, got {conv.OpType}");

        // Conv channel -> output channel, as the combined weights were laid out.
        long S = plan.PhaseCount, cout = plan.OutChannels;
        bool phaseMajor = lowered.Choice.PhaseMajorChannels;
        long Channel(long chan) => phaseMajor ? chan % cout : chan / S;
        long channels = cout * S;

        var nodes = new List<NodeProto>();
        var inits = new List<TensorProto>();
        var wFloat = lowered.Initializers.Single(t => t.Name == conv.Input[1]);
        inits.AddRange(lowered.Initializers.Where(t => t.Name != wFloat.Name)); // the crop's starts/ends/axes
        var wq = Tensors.ToFloats(wFloat).Select(v => unchecked((byte)(sbyte)v)).ToArray();
        string wName = Unique("polyphase_W_quantized");
        inits.Add(Raw(wName, DataType.Int8, wFloat.Dims.ToArray(), wq));
        var wScale = new float[channels];
        var wZp = new byte[channels];
        for (long c = 0; c < channels; c++) { wScale[c] = q.WeightScales[Channel(c)]; wZp[c] = unchecked((byte)q.WeightZeroPoints[Channel(c)]); }
        conv.Input[1] = Dequantize(nodes, inits, Unique, "polyphase_W", wName, wScale, Raw(Unique("polyphase_W_zero_point"), DataType.Int8, [channels], wZp));
        if (q.BiasValues is { } b)
        {
            int[] bv = Int32Values(b);
            var bq = new int[channels];
            var bScale = new float[channels];
            for (long c = 0; c < channels; c++) { bq[c] = bv[Channel(c)]; bScale[c] = q.BiasScales![Channel(c)]; }
            var bytes = new byte[channels * 4];
            Buffer.BlockCopy(bq, 0, bytes, 0, bytes.Length);
            string bName = Unique("polyphase_B_quantized");
            inits.Add(Raw(bName, DataType.Int32, [channels], bytes));
            conv.Input.Add(Dequantize(nodes, inits, Unique, "polyphase_B", bName, bScale, Raw(Unique("polyphase_B_zero_point"), DataType.Int32, [channels], new byte[channels * 4])));
        }

        // The original QuantizeLinear's scale and zero point, now right after the Conv.
        string quantized = conv.Output[0];
        conv.Output[0] = Unique("polyphase_conv");
        var requant = new NodeProto { OpType = Ops.QuantizeLinear.OpType, Name = Unique("QuantizeLinear") };
        requant.Input.AddRange([conv.Output[0], q.OutputQuantize.Input[1], q.OutputQuantize.Input[2]]);
        requant.Attribute.AddRange(q.OutputQuantize.Attribute.Select(a => a.Clone()));
        requant.Output.Add(quantized);
        nodes.Add(conv);
        nodes.Add(requant);
        nodes.AddRange(lowered.Nodes.Skip(1));

        editor.ReplaceNode(site.Node, nodes, alsoRemove: q.OutputQuantize);
        foreach (var t in inits) editor.AddInitializer(t, keepIrConvention: true);
        foreach (var dq in new[] { q.WeightDequantize, q.BiasDequantize }.OfType<NodeProto>())
        {
            if (editor.Index.IsUsed(dq.Output[0])) continue;
            editor.RemoveNode(dq);
            foreach (var i in dq.Input) editor.RemoveIfUnused(i);
        }
        return new LoweredSite(true, $"QDQ {Ops.ConvTranspose.OpType}",
            $"DQ -> int8 {lowered.Description} with Q on the Conv (QLinearConv in ONNX Runtime), interleave/crop on {q.ActivationType} -> DQ",
            plan.UsefulMacs, lowered.Choice.Macs);
    }

    private static string Dequantize(List<NodeProto> nodes, List<TensorProto> inits, Func<string, string> unique, string stem, string values, float[] scales, TensorProto zp)
    {
        string scale = unique($"{stem}_scale");
        inits.Add(Tensors.FromFloats(scale, [scales.Length], scales));
        inits.Add(zp);
        var dq = new NodeProto { OpType = Ops.DequantizeLinear.OpType, Name = unique($"{stem}_DequantizeLinear") };
        dq.Input.AddRange([values, scale, zp.Name]);
        dq.Output.Add(unique($"{stem}_DequantizeLinear_Output"));
        dq.Attribute.Add(Attributes.Int(Ops.DequantizeLinear.Axis, 0)); // Conv weights [Cout*S, ...]: per output channel
        nodes.Add(dq);
        return dq.Output[0];
    }

    private static sbyte[] Int8Values(TensorProto t) => t.HasRawData
        ? t.RawData.Span.ToArray().Select(v => unchecked((sbyte)v)).ToArray()
        : t.Int32Data.Select(v => (sbyte)v).ToArray();

    private static int[] Int32Values(TensorProto t) => t.HasRawData
        ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(t.RawData.Span).ToArray()
        : t.Int32Data.ToArray();

    private static TensorProto Raw(string name, DataType type, long[] dims, byte[] data)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(data) };
        t.Dims.AddRange(dims);
        return t;
    }
}
