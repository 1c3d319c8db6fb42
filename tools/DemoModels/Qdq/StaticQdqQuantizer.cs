using Google.Protobuf;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.DemoModels.Qdq;

/// <summary>
/// Writes a float32 model in QDQ form the way ONNX Runtime's <c>quantize_static(quant_format=QDQ, per_channel=True,
/// activation_type=QUInt8, weight_type=QInt8, calibrate_method=MinMax)</c> does:
/// <list type="bullet">
/// <item>every activation read or written by a quantized op gets QuantizeLinear "T_QuantizeLinear" -> DequantizeLinear
/// "T_DequantizeLinear" (uint8, one scale, range from MinMax calibration of the float model through ONNX Runtime);
/// a graph output keeps its name on the DequantizeLinear, its producer writes "T_QuantizeLinear_Input";</item>
/// <item>Conv/ConvTranspose weights become "W_quantized" int8 per output channel (Conv axis 0, ConvTranspose [Cin,
/// Cout, k...] axis 1) behind a DequantizeLinear with that axis; bias "B_quantized" int32 with scale x_scale*w_scale;</item>
/// <item>a Relu after a quantized op is removed and the op writes the Relu's output (QDQRemovableActivation), so the
/// output's uint8 range [0, max] does the clamping.</item>
/// </list>
/// One deviation, named: a BatchNormalization right after a ConvTranspose is folded into it first (what deployment
/// exports do; ORT's quant_pre_process folds BatchNormalization only into Conv).
/// </summary>
public static class StaticQdqQuantizer
{
    /// <summary>Ops quantized (ORT's default QDQ op list restricted to what the demos hold, plus Tanh, which users add).</summary>
    public static readonly IReadOnlySet<string> QuantizedOps = new HashSet<string>(StringComparer.Ordinal)
    {
        Ops.Conv.OpType, Ops.ConvTranspose.OpType, Ops.Concat.OpType, Ops.Relu.OpType, Ops.LeakyRelu.OpType,
        Ops.Resize.OpType, Ops.Tanh.OpType,
    };

    public static ModelProto Quantize(ModelProto fp32, IReadOnlyList<IReadOnlyList<TensorValue>> calibration)
    {
        if (calibration.Count == 0) throw new ArgumentException("at least one calibration input set is needed", nameof(calibration));
        var model = fp32.Clone();
        BatchNormFold.FoldAfterConvTranspose(model);
        var ranges = Calibrate(model, calibration);
        var g = model.Graph;
        var inits = g.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        RemoveRelus(g);

        var activations = new List<string>();
        void Want(string t) { if (t.Length > 0 && !inits.ContainsKey(t) && !activations.Contains(t)) activations.Add(t); }
        foreach (var n in g.Node.Where(n => QuantizedOps.Contains(n.OpType)).ToList())
        {
            if (n.OpType is Ops.Conv.OpType or Ops.ConvTranspose.OpType) Want(n.Input[0]);
            else if (n.OpType == Ops.Resize.OpType) Want(n.Input[0]);
            else foreach (var i in n.Input) Want(i);
            foreach (var o in n.Output) Want(o);
        }
        var pars = new Dictionary<string, (float Scale, byte Zp)>(StringComparer.Ordinal);
        foreach (var t in activations)
        {
            if (!ranges.TryGetValue(t, out var r)) throw new InvalidOperationException($"tensor '{t}' was not calibrated");
            pars[t] = QdqMath.Activation(r.Min, r.Max);
        }

        // Weights and bias first: they need the input's scale, before the activation edits rename anything.
        foreach (var n in g.Node.Where(n => n.OpType is Ops.Conv.OpType or Ops.ConvTranspose.OpType).ToList())
            QuantizeWeights(model, n, inits, pars[n.Input[0]].Scale);
        foreach (var t in activations) InsertPair(model, t, pars[t]);
        Topology.SortInPlace(model); // weight DequantizeLinear nodes sit before their op; activation pairs after their producer
        if (!Topology.IsSorted(model.Graph)) throw new InvalidOperationException($"{fp32.Graph.Name}: the quantized graph is not a DAG");
        return model;
    }

    /// <summary>Min and max of every float tensor the model computes or reads, over all calibration sets (ORT's MinMax calibrator).</summary>
    public static Dictionary<string, (double Min, double Max)> Calibrate(ModelProto model, IReadOnlyList<IReadOnlyList<TensorValue>> calibration)
    {
        var probe = model.Clone();
        var outputs = probe.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var n in probe.Graph.Node)
            foreach (var o in n.Output.Where(o => o.Length > 0 && outputs.Add(o)))
                probe.Graph.Output.Add(ModelBuilder.ValueInfo(o, DataType.Float, null));
        var ranges = new Dictionary<string, (double Min, double Max)>(StringComparer.Ordinal);
        using var runner = new OrtRunner(probe);
        foreach (var set in calibration)
        {
            foreach (var t in set.Concat(runner.Run(set)))
            {
                if (t.Data is not float[] f || f.Length == 0) continue;
                double lo = f.Min(), hi = f.Max();
                ranges[t.Name] = ranges.TryGetValue(t.Name, out var r) ? (Math.Min(r.Min, lo), Math.Max(r.Max, hi)) : (lo, hi);
            }
        }
        return ranges;
    }

    private static void RemoveRelus(GraphProto g)
    {
        foreach (var relu in g.Node.Where(n => n.OpType == Ops.Relu.OpType).ToList())
        {
            string input = relu.Input[0];
            var producer = g.Node.FirstOrDefault(n => n.Output.Contains(input));
            bool single = g.Node.Count(n => n.Input.Contains(input)) == 1 && g.Output.All(o => o.Name != input);
            if (producer is null || !QuantizedOps.Contains(producer.OpType) || producer.OpType == Ops.Relu.OpType || !single) continue;
            producer.Output[producer.Output.IndexOf(input)] = relu.Output[0];
            g.Node.Remove(relu);
        }
    }

    private static void QuantizeWeights(ModelProto model, NodeProto n, Dictionary<string, TensorProto> inits, float xScale)
    {
        var g = model.Graph;
        string wName = n.Input[1];
        var w = inits.TryGetValue(wName, out var wt) ? wt : throw new InvalidOperationException($"node '{n.Name}': weight '{wName}' is not an initializer");
        int axis = n.OpType == Ops.ConvTranspose.OpType ? 1 : 0;
        var (q, scales) = QdqMath.WeightsPerChannel(Tensors.ToFloats(w), w.Dims.ToArray(), axis);
        n.Input[1] = Dequantize(g, wName, Raw($"{wName}_quantized", DataType.Int8, w.Dims.ToArray(), q.Select(v => (byte)v).ToArray()),
            scales, Raw($"{wName}_zero_point", DataType.Int8, [scales.Length], new byte[scales.Length]), axis, n);
        g.Initializer.Remove(w);
        if (n.Input.Count < 3 || n.Input[2].Length == 0) return;
        string bName = n.Input[2];
        var b = inits[bName];
        var (bq, bScales) = QdqMath.Bias(Tensors.ToFloats(b), xScale, scales);
        var bytes = new byte[bq.Length * 4];
        Buffer.BlockCopy(bq, 0, bytes, 0, bytes.Length);
        n.Input[2] = Dequantize(g, $"{bName}_quantized", Raw($"{bName}_quantized", DataType.Int32, b.Dims.ToArray(), bytes),
            bScales, Raw($"{bName}_quantized_zero_point", DataType.Int32, [bScales.Length], new byte[bScales.Length * 4]), 0, n, scaleName: $"{bName}_quantized_scale");
        g.Initializer.Remove(b);
    }

    private static string Dequantize(GraphProto g, string baseName, TensorProto q, float[] scales, TensorProto zp, int axis, NodeProto before,
        string? scaleName = null)
    {
        scaleName ??= $"{baseName}_scale";
        g.Initializer.Add(q);
        g.Initializer.Add(Tensors.FromFloats(scaleName, [scales.Length], scales));
        zp.Name = zp.Name.Length > 0 ? zp.Name : $"{baseName}_zero_point";
        g.Initializer.Add(zp);
        var dq = new NodeProto { OpType = Ops.DequantizeLinear.OpType, Name = $"{baseName}_DequantizeLinear" };
        dq.Input.AddRange([q.Name, scaleName, zp.Name]);
        dq.Output.Add($"{baseName}_DequantizeLinear_Output");
        dq.Attribute.Add(Attributes.Int(Ops.DequantizeLinear.Axis, axis));
        g.Node.Insert(g.Node.IndexOf(before), dq);
        return dq.Output[0];
    }

    private static void InsertPair(ModelProto model, string t, (float Scale, byte Zp) p)
    {
        var g = model.Graph;
        bool isOutput = g.Output.Any(o => o.Name == t);
        var producer = g.Node.FirstOrDefault(n => n.Output.Contains(t));
        string qIn = t, dqOut = $"{t}_DequantizeLinear_Output";
        if (isOutput)
        {
            qIn = $"{t}_QuantizeLinear_Input";
            dqOut = t;
            if (producer is null) throw new InvalidOperationException($"graph output '{t}' has no producer");
            producer.Output[producer.Output.IndexOf(t)] = qIn;
        }
        else
        {
            foreach (var n in g.Node)
                for (int i = 0; i < n.Input.Count; i++)
                    if (n.Input[i] == t) n.Input[i] = dqOut;
        }
        g.Initializer.Add(Tensors.FromFloats($"{t}_scale", [], [p.Scale]));
        g.Initializer.Add(Raw($"{t}_zero_point", DataType.Uint8, [], [p.Zp]));
        var q = new NodeProto { OpType = Ops.QuantizeLinear.OpType, Name = $"{t}_QuantizeLinear" };
        q.Input.AddRange([qIn, $"{t}_scale", $"{t}_zero_point"]);
        q.Output.Add($"{t}_QuantizeLinear_Output");
        var dq = new NodeProto { OpType = Ops.DequantizeLinear.OpType, Name = $"{t}_DequantizeLinear" };
        dq.Input.AddRange([q.Output[0], $"{t}_scale", $"{t}_zero_point"]);
        dq.Output.Add(dqOut);
        int at = producer is null ? 0 : g.Node.IndexOf(producer) + 1;
        g.Node.Insert(at, dq);
        g.Node.Insert(at, q);
    }

    private static TensorProto Raw(string name, DataType type, long[] dims, byte[] data)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(data) };
        t.Dims.AddRange(dims);
        return t;
    }
}
