using Google.Protobuf;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using AttrType = OnnxDeconv.GraphRewrite.Onnx.AttributeProto.Types.AttributeType;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;
using DataLocation = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataLocation;

namespace OnnxDeconv.Fuzz;

/// <summary>A mutated model: its bytes and the list of mutations applied (for the replay report).</summary>
public sealed record Mutant(byte[] Bytes, string Seed, IReadOnlyList<string> Mutations);

/// <summary>
/// Seeded mutations of ONNX models at two levels: raw bytes (truncation, flips, splices) and structure (through the
/// ModelProto: dims, attributes, types, initializers, graph wiring, opsets, nested subgraphs). Deterministic: the same
/// seed model and Random give the same mutant.
/// </summary>
public static class Mutator
{
    // ONNX control-flow ops and their attributes; the rewriter has no Ops entry for them (it leaves them alone).
    private const string If = "If";
    private const string ThenBranch = "then_branch";
    private const string ElseBranch = "else_branch";
    private const string Loop = "Loop";
    private const string Body = "body";
    private const string Identity = "Identity";

    private static readonly long[] HostileInts = [0, -1, -7, 1, 2, 3, 100, 4097, int.MaxValue, (long)int.MaxValue + 1, 1L << 40, long.MaxValue, long.MinValue];

    private static readonly string[] ConvTransposeAttributes =
    [
        Ops.ConvTranspose.Strides, Ops.ConvTranspose.Pads, Ops.ConvTranspose.KernelShape, Ops.ConvTranspose.Dilations,
        Ops.ConvTranspose.OutputPadding, Ops.ConvTranspose.OutputShape, Ops.ConvTranspose.Group, Ops.ConvTranspose.AutoPad,
    ];

    private static readonly string[] StructuralKinds =
    [
        "huge-dim", "negative-dim", "strides", "pads-beyond-kernel", "kernel-shape-vs-W", "attribute-values",
        "attribute-type", "element-type", "missing-initializer", "dangling-input", "cycle", "duplicate-name",
        "opset", "domain", "if-subgraph", "loop-subgraph", "initializer-data", "external-data", "drop-io",
        "op-type", "input-count", "ir-version", "graph-output",
    ];

    public static Mutant Mutate(byte[] seedBytes, string seedName, Random rng, IReadOnlyList<byte[]> corpus)
    {
        var log = new List<string>();
        byte[] bytes;
        if (rng.NextDouble() < 0.3) bytes = MutateBytes(seedBytes, rng, corpus, log);
        else
        {
            var model = ModelProto.Parser.ParseFrom(seedBytes);
            int n = 1 + (rng.NextDouble() < 0.35 ? rng.Next(1, 3) : 0);
            for (int i = 0; i < n; i++)
            {
                string kind = StructuralKinds[rng.Next(StructuralKinds.Length)];
                log.Add(Structural(model, kind, rng));
            }
            bytes = model.ToByteArray();
            // Occasionally stack a byte-level mutation on top of a structural one.
            if (rng.NextDouble() < 0.05) bytes = MutateBytes(bytes, rng, corpus, log);
        }
        return new Mutant(bytes, seedName, log);
    }

    // ---------------------------------------------------------------- bytes

    private static byte[] MutateBytes(byte[] src, Random rng, IReadOnlyList<byte[]> corpus, List<string> log)
    {
        var b = (byte[])src.Clone();
        switch (rng.Next(5))
        {
            case 0:
            {
                int len = rng.NextDouble() < 0.2 ? rng.Next(0, Math.Min(64, b.Length)) : rng.Next(0, b.Length);
                log.Add($"bytes: truncate to {len} of {b.Length}");
                return b[..len];
            }
            case 1:
            {
                int flips = 1 + rng.Next(16);
                for (int i = 0; i < flips; i++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                log.Add($"bytes: {flips} bit flip(s)");
                return b;
            }
            case 2:
            {
                // Flips concentrated in the first KB, where the graph structure (not weight data) usually lives.
                int flips = 1 + rng.Next(8);
                int span = Math.Min(b.Length, 1024);
                for (int i = 0; i < flips; i++) b[rng.Next(span)] = (byte)rng.Next(256);
                log.Add($"bytes: {flips} random byte(s) in the first {span}");
                return b;
            }
            case 3:
            {
                var donor = corpus[rng.Next(corpus.Count)];
                int from = rng.Next(donor.Length), len = rng.Next(1, Math.Min(4096, donor.Length - from) + 1);
                int at = rng.Next(b.Length + 1);
                bool replace = rng.Next(2) == 0;
                var outBytes = new List<byte>(b.Length + len);
                outBytes.AddRange(b.AsSpan(0, at).ToArray());
                outBytes.AddRange(donor.AsSpan(from, len).ToArray());
                int rest = replace ? Math.Min(b.Length, at + len) : at;
                outBytes.AddRange(b.AsSpan(rest).ToArray());
                log.Add($"bytes: splice {len} byte(s) from another model at {at} ({(replace ? "overwrite" : "insert")})");
                return outBytes.ToArray();
            }
            default:
            {
                int at = rng.Next(b.Length), len = rng.Next(1, Math.Min(256, b.Length - at) + 1);
                var outBytes = b[..at].Concat(b[(at + len)..]).ToArray();
                log.Add($"bytes: delete {len} byte(s) at {at}");
                return outBytes.Length == 0 ? b : outBytes;
            }
        }
    }

    // ---------------------------------------------------------------- structure

    private static string Structural(ModelProto m, string kind, Random rng)
    {
        var g = m.Graph ??= new GraphProto();
        switch (kind)
        {
            case "huge-dim":
            case "negative-dim":
            {
                long v = kind == "huge-dim" ? Pick(rng, [1L << 20, int.MaxValue, 1L << 40, long.MaxValue]) : Pick(rng, [-1L, -3L, 0L, long.MinValue]);
                var targets = g.Input.Concat(g.Output).Concat(g.ValueInfo).Where(v => v.Type?.TensorType?.Shape is { Dim.Count: > 0 }).ToList();
                if (targets.Count > 0 && rng.Next(3) != 0)
                {
                    var vi = Pick(rng, targets);
                    var dims = vi.Type.TensorType.Shape.Dim;
                    int i = rng.Next(dims.Count);
                    dims[i] = new TensorShapeProto.Types.Dimension { DimValue = v };
                    return $"{kind}: value {vi.Name} dim {i} = {v}";
                }
                if (g.Initializer.Count > 0)
                {
                    var t = Pick(rng, g.Initializer);
                    if (t.Dims.Count == 0) t.Dims.Add(v); else t.Dims[rng.Next(t.Dims.Count)] = v;
                    return $"{kind}: initializer {t.Name} dims = [{string.Join(",", t.Dims)}]";
                }
                return $"{kind}: nothing to change";
            }
            case "strides":
            {
                var n = PickConvT(g, rng);
                if (n is null) return "strides: no node";
                int rank = RankOf(n);
                var vals = Enumerable.Range(0, rank).Select(_ => Pick(rng, [0L, -1L, -2L, 1L, 2L, 1L << 33])).ToArray();
                SetAttr(n, Attributes.Ints(Ops.ConvTranspose.Strides, vals));
                return $"strides: {n.Name} strides = [{string.Join(",", vals)}]";
            }
            case "pads-beyond-kernel":
            {
                var n = PickConvT(g, rng);
                if (n is null) return "pads: no node";
                int rank = RankOf(n);
                var vals = Enumerable.Range(0, 2 * rank).Select(_ => Pick(rng, [0L, 5L, 9L, 64L, 1000L, -3L, 1L << 31])).ToArray();
                SetAttr(n, Attributes.Ints(Ops.ConvTranspose.Pads, vals));
                return $"pads: {n.Name} pads = [{string.Join(",", vals)}]";
            }
            case "kernel-shape-vs-W":
            {
                var n = PickConvT(g, rng);
                if (n is null) return "kernel_shape: no node";
                int rank = RankOf(n) + Pick(rng, [0, 0, 1, -1]);
                var vals = Enumerable.Range(0, Math.Max(0, rank)).Select(_ => Pick(rng, [1L, 2L, 3L, 7L, 0L, -1L])).ToArray();
                SetAttr(n, Attributes.Ints(Ops.ConvTranspose.KernelShape, vals));
                return $"kernel_shape: {n.Name} kernel_shape = [{string.Join(",", vals)}]";
            }
            case "attribute-values":
            {
                var n = PickConvT(g, rng) ?? (g.Node.Count > 0 ? Pick(rng, g.Node) : null);
                if (n is null) return "attribute-values: no node";
                string name = Pick(rng, ConvTransposeAttributes);
                if (name == Ops.ConvTranspose.AutoPad)
                {
                    string v = Pick(rng, ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", "BOGUS", ""]);
                    SetAttr(n, Attributes.String(name, v));
                    return $"attribute: {n.Name} {name} = '{v}'";
                }
                if (name == Ops.ConvTranspose.Group)
                {
                    long v = Pick(rng, HostileInts);
                    SetAttr(n, Attributes.Int(name, v));
                    return $"attribute: {n.Name} group = {v}";
                }
                int count = Pick(rng, [0, 1, 2, 3, 4, 6]);
                var vals = Enumerable.Range(0, count).Select(_ => Pick(rng, HostileInts)).ToArray();
                SetAttr(n, Attributes.Ints(name, vals));
                return $"attribute: {n.Name} {name} = [{string.Join(",", vals)}]";
            }
            case "attribute-type":
            {
                var nodes = g.Node.Where(x => x.Attribute.Count > 0).ToList();
                if (nodes.Count == 0) return "attribute-type: no attribute";
                var n = Pick(rng, nodes);
                var a = Pick(rng, n.Attribute);
                var t = Pick(rng, [AttrType.Float, AttrType.Int, AttrType.String, AttrType.Ints, AttrType.Tensor, AttrType.Graph, AttrType.Undefined, (AttrType)99]);
                a.Type = t;
                if (rng.Next(2) == 0) { a.Ints.Clear(); a.I = 0; }
                return $"attribute-type: {n.Name}.{a.Name} type = {t}";
            }
            case "element-type":
            {
                var dt = Pick(rng, [DataType.Undefined, DataType.Uint8, DataType.Int64, DataType.String, DataType.Double, DataType.Float16, DataType.Bfloat16, DataType.Bool, (DataType)999]);
                if (g.Initializer.Count > 0 && rng.Next(2) == 0)
                {
                    var t = Pick(rng, g.Initializer);
                    t.DataType = (int)dt;
                    return $"element-type: initializer {t.Name} data_type = {dt}";
                }
                var vis = g.Input.Concat(g.Output).Where(v => v.Type?.TensorType is not null).ToList();
                if (vis.Count == 0) return "element-type: nothing";
                var vi = Pick(rng, vis);
                vi.Type.TensorType.ElemType = (int)dt;
                return $"element-type: value {vi.Name} elem_type = {dt}";
            }
            case "missing-initializer":
            {
                if (g.Initializer.Count == 0) return "missing-initializer: none";
                int i = rng.Next(g.Initializer.Count);
                string name = g.Initializer[i].Name;
                g.Initializer.RemoveAt(i);
                return $"missing-initializer: removed {name}";
            }
            case "dangling-input":
            {
                var nodes = g.Node.Where(x => x.Input.Count > 0).ToList();
                if (nodes.Count == 0) return "dangling: no node";
                var n = Pick(rng, nodes);
                int i = rng.Next(n.Input.Count);
                n.Input[i] = "fuzz_dangling_" + rng.Next(1000);
                return $"dangling-input: {n.Name} input {i} = {n.Input[i]}";
            }
            case "cycle":
            {
                if (g.Node.Count == 0) return "cycle: no node";
                int a = rng.Next(g.Node.Count), b = rng.Next(a, g.Node.Count);
                var na = g.Node[a];
                var nb = g.Node[b];
                if (na.Input.Count == 0 || nb.Output.Count == 0) return "cycle: no edge";
                int i = rng.Next(na.Input.Count);
                na.Input[i] = nb.Output[0];
                return $"cycle: {na.Name} input {i} <- {nb.Name} output {nb.Output[0]}";
            }
            case "duplicate-name":
            {
                switch (rng.Next(4))
                {
                    case 0 when g.Node.Count >= 2:
                    {
                        var x = Pick(rng, g.Node);
                        var y = Pick(rng, g.Node);
                        if (x.Output.Count == 0 || y.Output.Count == 0) return "duplicate: no outputs";
                        y.Output[0] = x.Output[0];
                        return $"duplicate-name: {y.Name} output = {x.Output[0]} (also {x.Name}'s)";
                    }
                    case 1 when g.Initializer.Count > 0:
                    {
                        var t = Pick(rng, g.Initializer).Clone();
                        if (rng.Next(2) == 0 && t.Dims.Count > 0) t.Dims[0] += 1;
                        g.Initializer.Add(t);
                        return $"duplicate-name: initializer {t.Name} twice";
                    }
                    case 2 when g.Input.Count > 0:
                    {
                        g.Input.Add(Pick(rng, g.Input).Clone());
                        return $"duplicate-name: graph input {g.Input[^1].Name} twice";
                    }
                    default:
                    {
                        if (g.Node.Count < 2) return "duplicate: too few nodes";
                        var x = Pick(rng, g.Node);
                        Pick(rng, g.Node).Name = x.Name;
                        return $"duplicate-name: node name {x.Name} twice";
                    }
                }
            }
            case "opset":
            {
                long v = Pick(rng, [0L, 1L, 6L, 10L, 22L, 23L, 9999L, -1L, long.MaxValue]);
                switch (rng.Next(3))
                {
                    case 0:
                        m.OpsetImport.Clear();
                        return "opset: no opset_import";
                    case 1:
                        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = v });
                        return $"opset: duplicate default-domain import version {v}";
                    default:
                        foreach (var o in m.OpsetImport) o.Version = v;
                        return $"opset: every import version = {v}";
                }
            }
            case "domain":
            {
                var n = PickConvT(g, rng) ?? (g.Node.Count > 0 ? Pick(rng, g.Node) : null);
                if (n is null) return "domain: no node";
                n.Domain = Pick(rng, ["com.bogus", "ai.onnx", "ai.onnxdeconv", "ai.onnx.ml", "com.microsoft"]);
                if (rng.Next(2) == 0) m.OpsetImport.Add(new OperatorSetIdProto { Domain = n.Domain, Version = rng.Next(-1, 3) });
                return $"domain: {n.Name} domain = {n.Domain}";
            }
            case "if-subgraph": return WrapInIf(m, rng);
            case "loop-subgraph": return WrapInLoop(m, rng);
            case "initializer-data":
            {
                if (g.Initializer.Count == 0) return "initializer-data: none";
                var t = Pick(rng, g.Initializer);
                switch (rng.Next(4))
                {
                    case 0:
                        if (t.RawData.Length > 0) t.RawData = ByteString.CopyFrom(t.RawData.Span[..rng.Next(t.RawData.Length)]);
                        else if (t.FloatData.Count > 0) t.FloatData.RemoveAt(t.FloatData.Count - 1);
                        return $"initializer-data: {t.Name} data shortened";
                    case 1:
                        t.FloatData.Add(1f);
                        return $"initializer-data: {t.Name} float_data and raw_data both present";
                    case 2:
                        t.RawData = ByteString.CopyFrom(new byte[3]);
                        t.FloatData.Clear();
                        return $"initializer-data: {t.Name} raw_data = 3 bytes";
                    default:
                        t.Dims.Clear();
                        return $"initializer-data: {t.Name} dims cleared (scalar) with data kept";
                }
            }
            case "external-data":
            {
                if (g.Initializer.Count == 0) return "external-data: none";
                var t = Pick(rng, g.Initializer);
                t.RawData = ByteString.Empty;
                t.FloatData.Clear();
                t.DataLocation = DataLocation.External;
                t.ExternalData.Clear();
                string loc = Pick(rng, ["../../etc/passwd", "/etc/passwd", "missing.bin", "", "model.onnx", "/proc/self/mem", "a/../../x", "."]);
                t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = loc });
                if (rng.Next(2) == 0) t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = Pick(rng, ["0", "-5", "99999999999", "x"]) });
                if (rng.Next(2) == 0) t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = Pick(rng, ["0", "4", "-1", "99999999999", "1e3"]) });
                return $"external-data: {t.Name} -> [{string.Join(", ", t.ExternalData.Select(e => e.Key + "=" + e.Value))}]";
            }
            case "drop-io":
            {
                if (rng.Next(2) == 0 && g.Input.Count > 0)
                {
                    int i = rng.Next(g.Input.Count);
                    string name = g.Input[i].Name;
                    g.Input.RemoveAt(i);
                    return $"drop-io: graph input {name} removed";
                }
                if (g.Output.Count == 0) return "drop-io: nothing";
                if (rng.Next(2) == 0) { g.Output.Clear(); return "drop-io: all graph outputs removed"; }
                g.Output[0].Name = "fuzz_unproduced";
                return "drop-io: graph output renamed to an unproduced value";
            }
            case "op-type":
            {
                if (g.Node.Count == 0) return "op-type: no node";
                var n = Pick(rng, g.Node);
                n.OpType = Pick(rng, ["ConvTranspose", "Conv", "FuzzBogusOp", "", "Resize", "TransposedConv"]);
                return $"op-type: {n.Name} op_type = '{n.OpType}'";
            }
            case "input-count":
            {
                var n = PickConvT(g, rng) ?? (g.Node.Count > 0 ? Pick(rng, g.Node) : null);
                if (n is null) return "input-count: no node";
                if (rng.Next(2) == 0 && n.Input.Count > 0) { n.Input.RemoveAt(n.Input.Count - 1); return $"input-count: {n.Name} lost its last input"; }
                n.Input.Add(rng.Next(2) == 0 ? "" : n.Input.Count > 0 ? n.Input[0] : "x");
                return $"input-count: {n.Name} got an extra input '{n.Input[^1]}'";
            }
            case "ir-version":
            {
                m.IrVersion = Pick(rng, [0L, 1L, 3L, 4L, 12L, 999L, -1L]);
                return $"ir-version: {m.IrVersion}";
            }
            default: // graph-output: a node's result becomes a graph output too (or the graph loses its name)
            {
                if (g.Node.Count == 0 || rng.Next(4) == 0) { g.Name = ""; return "graph-output: graph name cleared"; }
                var n = Pick(rng, g.Node);
                if (n.Output.Count == 0) return "graph-output: node has no output";
                g.Output.Add(new ValueInfoProto { Name = n.Output[0] });
                return $"graph-output: {n.Output[0]} added as an untyped graph output";
            }
        }
    }

    /// <summary>Moves one ConvTranspose into both branches of an If on a constant-true condition (outer names captured).</summary>
    private static string WrapInIf(ModelProto m, Random rng)
    {
        var g = m.Graph;
        var n = PickConvT(g, rng);
        if (n is null || n.Output.Count == 0) return "if-subgraph: no ConvTranspose";
        int at = g.Node.IndexOf(n);
        string y = n.Output[0];
        GraphProto Branch(string suffix)
        {
            var inner = n.Clone();
            inner.Name = n.Name + "_" + suffix;
            inner.Output[0] = y + "_" + suffix;
            var b = new GraphProto { Name = "fuzz_" + suffix };
            b.Node.Add(inner);
            b.Output.Add(new ValueInfoProto { Name = inner.Output[0], Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float } } });
            return b;
        }
        string cond = "fuzz_if_cond_" + at;
        g.Initializer.Add(new TensorProto { Name = cond, DataType = (int)DataType.Bool, Int32Data = { rng.Next(2) } });
        var ifNode = new NodeProto { OpType = If, Name = "fuzz_if_" + at };
        ifNode.Input.Add(cond);
        ifNode.Output.Add(y);
        ifNode.Attribute.Add(new AttributeProto { Name = ThenBranch, Type = AttrType.Graph, G = Branch("then") });
        ifNode.Attribute.Add(new AttributeProto { Name = ElseBranch, Type = AttrType.Graph, G = Branch("else") });
        g.Node[at] = ifNode;
        return $"if-subgraph: {n.Name} moved into both branches of an If";
    }

    /// <summary>Moves one ConvTranspose into a one-trip Loop body (data input as the loop-carried value, W/B captured).</summary>
    private static string WrapInLoop(ModelProto m, Random rng)
    {
        var g = m.Graph;
        var n = PickConvT(g, rng);
        if (n is null || n.Input.Count == 0 || n.Output.Count == 0) return "loop-subgraph: no ConvTranspose";
        int at = g.Node.IndexOf(n);
        string trip = "fuzz_loop_trip_" + at, cond = "fuzz_loop_cond_" + at;
        g.Initializer.Add(new TensorProto { Name = trip, DataType = (int)DataType.Int64, Int64Data = { 1 } });
        g.Initializer.Add(new TensorProto { Name = cond, DataType = (int)DataType.Bool, Int32Data = { 1 } });
        var tensorF = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float } };
        var body = new GraphProto { Name = "fuzz_loop_body" };
        body.Input.Add(ModelBuilder.ValueInfo("fuzz_i", DataType.Int64, []));
        body.Input.Add(ModelBuilder.ValueInfo("fuzz_cond_in", DataType.Bool, []));
        body.Input.Add(new ValueInfoProto { Name = "fuzz_v_in", Type = tensorF.Clone() });
        var inner = n.Clone();
        inner.Name = n.Name + "_body";
        inner.Input[0] = "fuzz_v_in";
        inner.Output[0] = "fuzz_v_out";
        var keep = new NodeProto { OpType = Identity, Name = "fuzz_cond_keep" };
        keep.Input.Add("fuzz_cond_in");
        keep.Output.Add("fuzz_cond_out");
        body.Node.Add(keep);
        body.Node.Add(inner);
        body.Output.Add(ModelBuilder.ValueInfo("fuzz_cond_out", DataType.Bool, []));
        body.Output.Add(new ValueInfoProto { Name = "fuzz_v_out", Type = tensorF.Clone() });
        var loop = new NodeProto { OpType = Loop, Name = "fuzz_loop_" + at };
        loop.Input.Add(trip);
        loop.Input.Add(cond);
        loop.Input.Add(n.Input[0]);
        loop.Output.Add(n.Output[0]);
        loop.Attribute.Add(new AttributeProto { Name = Body, Type = AttrType.Graph, G = body });
        g.Node[at] = loop;
        return $"loop-subgraph: {n.Name} moved into a one-trip Loop body";
    }

    private static NodeProto? PickConvT(GraphProto g, Random rng)
    {
        var c = g.Node.Where(x => x.OpType == Ops.ConvTranspose.OpType).ToList();
        return c.Count > 0 ? Pick(rng, c) : null;
    }

    private static int RankOf(NodeProto n) =>
        Attributes.Find(n, Ops.ConvTranspose.KernelShape)?.Ints.Count is int k and > 0 ? k
        : Attributes.Find(n, Ops.ConvTranspose.Strides)?.Ints.Count is int s and > 0 ? s : 2;

    private static void SetAttr(NodeProto n, AttributeProto a)
    {
        for (int i = n.Attribute.Count - 1; i >= 0; i--) if (n.Attribute[i].Name == a.Name) n.Attribute.RemoveAt(i);
        n.Attribute.Add(a);
    }

    private static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    private static T Pick<T>(Random rng, Google.Protobuf.Collections.RepeatedField<T> items) => items[rng.Next(items.Count)];
}
