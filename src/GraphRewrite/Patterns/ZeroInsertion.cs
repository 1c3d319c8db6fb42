using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using C = OnnxDeconv.GraphRewrite.Ops.Conv;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>
/// An explicit zero insertion ("upsample with zeros") followed by an optional zero Pad and a stride-1 Conv
/// (DESIGN.md "Explicit zero insertion + Conv"). Per spatial axis the Conv reads
/// <c>u_pad[j] = u[j - PadBegin]</c> where <c>u[i*s] = x[i]</c> on the standard stuffed length <c>s*I</c> (each pixel followed by
/// <c>s-1</c> zeros); <see cref="PadBegin"/>/<see cref="PadEnd"/> are the total zero padding around that standard form
/// (zeros the interleave puts before a pixel move into PadBegin, with the same amount taken off PadEnd).
/// </summary>
public sealed record ZeroInsertionMatch
{
    public required NodeProto Conv { get; init; }
    /// <summary>The tensor that was zero-stuffed (rank 2 + spatial).</summary>
    public required string Input { get; init; }
    /// <summary>Every node of the pattern except the Conv (interleave, zero generators, optional Pad); the rewrite removes them.</summary>
    public required IReadOnlyList<NodeProto> Nodes { get; init; }
    /// <summary>"Reshape/Pad/Reshape" or "Unsqueeze/Concat/Reshape" style, plus "+Pad" when an extra Pad precedes the Conv.</summary>
    public required string Style { get; init; }
    public required long[] Strides { get; init; }
    public required long[] PadBegin { get; init; }
    public required long[] PadEnd { get; init; }
    public required long[] Kernel { get; init; }
    public required long InChannels { get; init; }
    public required long OutChannels { get; init; }
    public required long Group { get; init; }
    /// <summary>Conv weights [Cout, Cin/group, k...] as float32.</summary>
    public required float[] ConvWeights { get; init; }
    public required string WeightName { get; init; }
    public required string? BiasName { get; init; }
    /// <summary>Declared shape of <see cref="Input"/> (-1 for dynamic dims).</summary>
    public required long[] InputShape { get; init; }
    /// <summary>MACs of the original Conv on the stuffed tensor (0 when a dim is dynamic).</summary>
    public required long ConvMacs { get; init; }
}

/// <summary>
/// Finds the interleave patterns exporters produce for zero insertion in front of a Conv:
/// <code>
/// (a) x -> Reshape [N,C,S0,1,S1,1..] -> Pad (zeros on the unit axes only) -> Reshape [N,C,S0*s0,..] [-> Pad] -> Conv
/// (c) x -> Unsqueeze(unit axes) -> Concat(x', zeros.., axis = unit axis) [-> Concat ..] -> Reshape [N,C,S0*s0,..] [-> Pad] -> Conv
/// </code>
/// (1D is the same with one spatial axis; Pads and Concats may be mixed). Matches structurally, then confirms the
/// constants: zero pad values, constant mode, reshape targets consistent with the shapes (0 and -1 entries included).
/// Never throws: false with a reason.
/// </summary>
public static class ZeroInsertion
{
    public static bool IsConv(NodeProto node) => node.OpType == C.OpType && Ops.IsDefaultDomain(node.Domain);

    /// <summary>True when <paramref name="conv"/> reads a zero-stuffed tensor this matcher understands; otherwise a reason.</summary>
    public static bool TryMatch(GraphIndex index, NodeProto conv, out ZeroInsertionMatch? match, out string? reason) =>
        SafeMatch.Try((out ZeroInsertionMatch? m) => Check(index, conv, out m), out match, out reason);

    /// <summary>True when the Conv's data input comes from a Reshape (possibly through a Pad): worth reporting why a match failed.</summary>
    public static bool LooksLikeZeroInsertion(GraphIndex index, NodeProto conv)
    {
        if (!IsConv(conv) || conv.Input.Count == 0) return false;
        var p = index.Producer(conv.Input[0]);
        if (p is not null && Is(p, Ops.Pad.OpType) && p.Input.Count > 0) p = index.Producer(p.Input[0]);
        if (p is null || !Is(p, Ops.Reshape.OpType) || p.Input.Count == 0) return false;
        var q = index.Producer(p.Input[0]);
        return q is not null && (Is(q, Ops.Pad.OpType) || Is(q, Ops.Concat.OpType));
    }

    private static bool Is(NodeProto n, string opType) => n.OpType == opType && Ops.IsDefaultDomain(n.Domain);

    /// <summary>A dimension: its static value (&gt; 0) if known, and an identity for unknown dims that are the same symbol.</summary>
    private readonly record struct Dim(long Value, int Sym)
    {
        public static readonly Dim One = new(1, -1);
        public static bool Same(Dim a, Dim b) => (a.Value > 0 && a.Value == b.Value) || (a.Sym >= 0 && a.Sym == b.Sym);
        public override string ToString() => Value > 0 ? Value.ToString() : "?";
    }

    private static string? Check(GraphIndex index, NodeProto conv, out ZeroInsertionMatch? match)
    {
        match = null;
        if (!IsConv(conv)) return $"not a Conv ({conv.OpType})";
        string cname = Attributes.Describe(conv);
        if (conv.Input.Count < 2 || conv.Output.Count != 1 || conv.Output[0].Length == 0)
            return $"Conv {cname} must have inputs X, W and exactly one output";
        string wName = conv.Input[1];
        var wt = index.Constant(wName);
        if (wt is null) return $"Conv weights '{wName}' are not constant";
        if (wt.DataType != (int)DataType.Float) return $"Conv weights '{wName}' are {(DataType)wt.DataType}; only float32 is rewritten";
        long[] wShape = wt.Dims.ToArray();
        int r = wShape.Length - 2;
        if (r < 1) return $"Conv weights '{wName}' have rank {wShape.Length}; need [Cout, Cin/group, k...]";
        long group = Attributes.GetInt(conv, C.Group) ?? 1;
        if (group < 1 || wShape[0] % group != 0) return $"Conv {cname}: group {group} does not divide Cout {wShape[0]}";
        long cout = wShape[0], cin = wShape[1] * group;
        long[] kernel = wShape[2..];
        if (kernel.Any(k => k < 1)) return $"Conv weights '{wName}' have an empty kernel";
        if (Attributes.GetInts(conv, C.KernelShape) is { } ks && !ks.SequenceEqual(kernel))
            return $"Conv {cname}: kernel_shape [{string.Join(",", ks)}] differs from the weights' [{string.Join(",", kernel)}]";
        if (Attributes.GetInts(conv, C.Strides) is { } st && st.Any(v => v != 1))
            return $"Conv {cname} has strides [{string.Join(",", st)}]; only stride 1 after zero insertion is a transposed convolution";
        if (Attributes.GetInts(conv, C.Dilations) is { } dl && dl.Any(v => v != 1))
            return $"Conv {cname} has dilations [{string.Join(",", dl)}]; only dilation 1 is rewritten";
        string autoPad = Attributes.GetString(conv, C.AutoPad) ?? Ops.Values.NotSet;
        if (autoPad != Ops.Values.NotSet && autoPad != Ops.Values.Valid)
            return $"Conv {cname} has auto_pad {autoPad}; only explicit pads (or VALID) are rewritten";
        long[] convPads = autoPad == Ops.Values.Valid ? new long[2 * r] : Attributes.GetInts(conv, C.Pads) ?? new long[2 * r];
        if (convPads.Length != 2 * r || convPads.Any(p => p < 0)) return $"Conv {cname}: pads [{string.Join(",", convPads)}] are not {2 * r} non-negative values";
        string? bias = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? conv.Input[2] : null;
        if (bias is not null)
        {
            var bt = index.Constant(bias);
            if (bt is null) return $"Conv bias '{bias}' is not constant";
            if (bt.DataType != (int)DataType.Float) return $"Conv bias '{bias}' is {(DataType)bt.DataType}; only float32 is rewritten";
            if (bt.Dims.Count != 1 || bt.Dims[0] != cout) return $"Conv bias '{bias}' has shape [{string.Join(",", bt.Dims)}]; expected [{cout}]";
        }

        var nodes = new List<NodeProto>();
        long[] padBegin = new long[r], padEnd = new long[r];
        string style = "";
        string v = conv.Input[0];
        var p = index.Producer(v);
        if (p is not null && Is(p, Ops.Pad.OpType))
        {
            string? why = ReadPad(index, p, 2 + r, out var pads);
            if (why is not null) return why;
            if (pads[0] != 0 || pads[1] != 0 || pads[2 + r] != 0 || pads[3 + r] != 0)
                return $"Pad {Attributes.Describe(p)} pads the batch or channel axis";
            for (int j = 0; j < r; j++)
            {
                if (pads[2 + j] < 0 || pads[4 + r + j] < 0) return $"Pad {Attributes.Describe(p)} crops (negative pads); not rewritten";
                padBegin[j] += pads[2 + j];
                padEnd[j] += pads[4 + r + j];
            }
            nodes.Add(p);
            style = "+Pad";
            v = p.Input[0];
            p = index.Producer(v);
        }
        if (p is null || !Is(p, Ops.Reshape.OpType) || p.Input.Count < 2)
            return $"Conv {cname} input is not produced by a zero-insertion interleave (no Reshape in front)";
        var reshape2 = p;
        nodes.Add(reshape2);

        // Walk back from the merging Reshape through Pads/Concats that add zeros on the unit axes to the expansion.
        int er = 2 + 2 * r;
        var steps = new List<NodeProto>();
        string cur = reshape2.Input[0];
        NodeProto? expansion = null;
        for (int guard = 0; guard < 4 * r + 4 && expansion is null; guard++)
        {
            var n = index.Producer(cur);
            if (n is null || n.Input.Count == 0) return $"'{cur}' is not produced by a zero-insertion interleave";
            if (Is(n, Ops.Pad.OpType) || Is(n, Ops.Concat.OpType)) { steps.Add(n); cur = n.Input[0]; }
            else if (Is(n, Ops.Reshape.OpType) || Is(n, Ops.Unsqueeze.OpType)) expansion = n;
            else return $"'{cur}' comes from {n.OpType}, not a zero-insertion interleave";
            if (Is(n, Ops.Concat.OpType))
            {
                // The data operand is the one input that is not a zero tensor.
                var data = n.Input.Where(i => !IsZero(index, i, 0)).ToList();
                if (data.Count != 1) return $"Concat {Attributes.Describe(n)} has {data.Count} non-zero inputs; expected one data input and zeros";
                cur = data[0];
            }
        }
        if (expansion is null) return "zero-insertion chain too long";
        if (steps.Count == 0) return $"Reshape {Attributes.Describe(reshape2)} merges axes without inserting zeros";
        string x = expansion.Input[0];
        string expanded = expansion.Output[0];
        nodes.Add(expansion);
        style = (Is(expansion, Ops.Reshape.OpType) ? "Reshape/" : "Unsqueeze/")
                + string.Join("+", steps.Select(s => s.OpType).Distinct()) + "/Reshape" + style;

        // Dimensions: N and spatial from x's static shape where known, C from the weights.
        // A Reshape accepts any input rank, so the interleave is only confirmed against a declared shape (rank at least).
        long[]? xs = index.Shape(x);
        if (xs is null) return $"'{x}' has no declared shape (value_info); run ONNX shape inference so the interleave can be confirmed";
        if (xs.Length != 2 + r) return $"'{x}' has rank {xs.Length}; the Conv is {r}D";
        if (xs[1] > 0 && xs[1] != cin) return $"'{x}' has {xs[1]} channels; the Conv expects {cin}";
        var n0 = new Dim(xs[0], 0);
        var c0 = new Dim(cin, 1);
        var sp = Enumerable.Range(0, r).Select(j => new Dim(xs[2 + j], 2 + j)).ToArray();
        var xDims = new[] { n0, c0 }.Concat(sp).ToArray();
        var expandedDims = new List<Dim> { n0, c0 };
        foreach (var d in sp) { expandedDims.Add(d); expandedDims.Add(Dim.One); }

        if (Is(expansion, Ops.Reshape.OpType))
        {
            string? why = CheckReshape(index, expansion, xDims, expandedDims.ToArray());
            if (why is not null) return why;
        }
        else
        {
            var axes = UnsqueezeAxes(index, expansion, er);
            var unit = Enumerable.Range(0, r).Select(j => (long)(3 + 2 * j)).ToArray();
            if (axes is null || !axes.OrderBy(a => a).SequenceEqual(unit))
                return $"Unsqueeze {Attributes.Describe(expansion)} does not insert one unit axis after each spatial axis";
        }

        // Forward over the steps: extents of the unit axes, zeros before each pixel.
        var extents = new Dictionary<string, long[]>(StringComparer.Ordinal) { [expanded] = Enumerable.Repeat(1L, r).ToArray() };
        long[] before = new long[r];
        string prev = expanded;
        for (int i = steps.Count - 1; i >= 0; i--)
        {
            var n = steps[i];
            var ext = (long[])extents[prev].Clone();
            if (Is(n, Ops.Pad.OpType))
            {
                string? why = ReadPad(index, n, er, out var pads);
                if (why is not null) return why;
                for (int a = 0; a < er; a++)
                {
                    bool isUnit = a >= 3 && (a - 3) % 2 == 0;
                    if (!isUnit && (pads[a] != 0 || pads[er + a] != 0))
                        return $"Pad {Attributes.Describe(n)} pads axis {a}, which is not an inserted unit axis";
                    if (pads[a] < 0 || pads[er + a] < 0) return $"Pad {Attributes.Describe(n)} has negative pads";
                    if (!isUnit) continue;
                    int j = (a - 3) / 2;
                    before[j] += pads[a];
                    ext[j] += pads[a] + pads[er + a];
                }
            }
            else
            {
                long axis = Attributes.GetInt(n, Ops.Concat.Axis) ?? long.MinValue;
                if (axis < 0) axis += er;
                if (axis < 3 || axis >= er || (axis - 3) % 2 != 0)
                    return $"Concat {Attributes.Describe(n)} joins along axis {Attributes.GetInt(n, Ops.Concat.Axis)}, not an inserted unit axis";
                int j = (int)(axis - 3) / 2;
                bool seenData = false;
                foreach (var input in n.Input)
                {
                    if (input == prev && !seenData) { seenData = true; continue; }
                    long? e = ZeroExtent(index, input, (int)axis, er, extents, nodes, 0);
                    if (e is null) return $"cannot tell how many zeros '{input}' inserts on axis {axis} of Concat {Attributes.Describe(n)}";
                    ext[j] += e.Value;
                    if (!seenData) before[j] += e.Value;
                }
                if (!seenData) return $"Concat {Attributes.Describe(n)} does not read '{prev}'";
            }
            nodes.Add(n);
            prev = n.Output[0];
            extents[prev] = ext;
        }

        var strides = extents[prev];
        if (strides.All(s => s == 1)) return "no zeros are inserted";
        var mergedIn = new List<Dim> { n0, c0 };
        var merged = new List<Dim> { n0, c0 };
        for (int j = 0; j < r; j++)
        {
            mergedIn.Add(sp[j]);
            mergedIn.Add(new Dim(strides[j], -1));
            merged.Add(strides[j] == 1 ? sp[j] : new Dim(sp[j].Value > 0 ? sp[j].Value * strides[j] : -1, -1));
        }
        {
            string? why = CheckReshape(index, reshape2, mergedIn.ToArray(), merged.ToArray());
            if (why is not null) return why;
        }

        // Every intermediate is read only inside the pattern and is not a graph output.
        var inPattern = new HashSet<NodeProto>(nodes, ReferenceEqualityComparer.Instance) { conv };
        foreach (var n in nodes)
            foreach (var o in n.Output.Where(o => o.Length > 0))
            {
                if (index.IsGraphOutput(o)) return $"'{o}' (output of {Attributes.Describe(n)}) is a graph output";
                if (index.SubgraphReaders(o).Count > 0) return $"'{o}' is read inside a subgraph";
                var other = index.Consumers(o).FirstOrDefault(c => !inPattern.Contains(c));
                if (other is not null) return $"'{o}' (output of {Attributes.Describe(n)}) is also used by {Attributes.Describe(other)}";
            }

        for (int j = 0; j < r; j++)
        {
            padBegin[j] += convPads[j] + before[j];
            padEnd[j] += convPads[r + j] - before[j];
        }
        long macs = 0;
        if (n0.Value > 0 && sp.All(d => d.Value > 0))
        {
            macs = checked(n0.Value * cout * (cin / group));
            for (int j = 0; j < r; j++)
            {
                long o = strides[j] * sp[j].Value + padBegin[j] + padEnd[j] - kernel[j] + 1;
                if (o < 1) return $"Conv {cname} output would be empty on spatial axis {j}";
                macs = checked(macs * kernel[j] * o);
            }
        }
        float[] w;
        try { w = index.Floats(wt); }
        catch (InvalidDataException e) { return e.Message; }

        match = new ZeroInsertionMatch
        {
            Conv = conv,
            Input = x,
            InputShape = xs,
            Nodes = nodes,
            Style = style,
            Strides = strides,
            PadBegin = padBegin,
            PadEnd = padEnd,
            Kernel = kernel,
            InChannels = cin,
            OutChannels = cout,
            Group = group,
            ConvWeights = w,
            WeightName = wName,
            BiasName = bias,
            ConvMacs = macs,
        };
        return null;
    }

    /// <summary>
    /// Pad's pads (length 2*rank) across opsets: attribute before 11, inputs since (axes input from 18). Refuses
    /// anything but constant mode with a zero value.
    /// </summary>
    private static string? ReadPad(GraphIndex index, NodeProto pad, int rank, out long[] pads)
    {
        pads = [];
        string name = Attributes.Describe(pad);
        string mode = Attributes.GetString(pad, Ops.Pad.Mode) ?? Ops.Values.Constant;
        if (mode != Ops.Values.Constant) return $"Pad {name} has mode '{mode}'; only constant zero padding inserts zeros";
        long opset = index.Opset(Ops.DefaultDomain) ?? 1;
        float value;
        long[]? raw;
        if (opset < 11)
        {
            raw = Attributes.GetInts(pad, Ops.Pad.Pads);
            value = Attributes.GetFloat(pad, Ops.Pad.Value) ?? 0f;
            if (raw is null) return $"Pad {name} has no pads attribute";
        }
        else
        {
            if (pad.Input.Count < 2 || pad.Input[1].Length == 0) return $"Pad {name} has no pads input";
            var pt = index.Constant(pad.Input[1]);
            if (pt is null) return $"Pad {name}: pads '{pad.Input[1]}' are not constant";
            raw = Tensors.ToInt64s(pt);
            value = 0f;
            if (pad.Input.Count > 2 && pad.Input[2].Length > 0)
            {
                var vt = index.Constant(pad.Input[2]);
                if (vt is null) return $"Pad {name}: constant_value '{pad.Input[2]}' is not constant";
                if (vt.DataType != (int)DataType.Float) return $"Pad {name}: constant_value is {(DataType)vt.DataType}; only float32 is rewritten";
                var vs = Tensors.ToFloats(vt);
                if (vs.Length != 1) return $"Pad {name}: constant_value has {vs.Length} elements";
                value = vs[0];
            }
            if (pad.Input.Count > 3 && pad.Input[3].Length > 0)
            {
                var at = index.Constant(pad.Input[3]);
                if (at is null) return $"Pad {name}: axes '{pad.Input[3]}' are not constant";
                var axes = Tensors.ToInt64s(at);
                if (raw.Length != 2 * axes.Length) return $"Pad {name}: {raw.Length} pads for {axes.Length} axes";
                var full = new long[2 * rank];
                for (int i = 0; i < axes.Length; i++)
                {
                    long a = axes[i] < 0 ? axes[i] + rank : axes[i];
                    if (a < 0 || a >= rank) return $"Pad {name}: axis {axes[i]} out of range for rank {rank}";
                    full[a] = raw[i];
                    full[rank + a] = raw[axes.Length + i];
                }
                raw = full;
            }
        }
        if (value != 0f) return $"Pad {name} pads with {value}, not zero";
        if (raw.Length != 2 * rank) return $"Pad {name} has {raw.Length} pads; expected {2 * rank} for rank {rank}";
        pads = raw;
        return null;
    }

    /// <summary>Confirms a constant Reshape target gives <paramref name="expected"/> (0 copies the input dim unless allowzero, one -1 infers).</summary>
    private static string? CheckReshape(GraphIndex index, NodeProto reshape, Dim[] inputDims, Dim[] expected)
    {
        string name = Attributes.Describe(reshape);
        if (reshape.Input.Count < 2 || reshape.Input[1].Length == 0) return $"Reshape {name} has no shape input";
        var t = index.Constant(reshape.Input[1]);
        if (t is null) return $"Reshape {name}: target shape '{reshape.Input[1]}' is computed at run time; cannot confirm the interleave";
        long[] target = Tensors.ToInt64s(t);
        string want = $"[{string.Join(",", expected.Select(d => d.ToString()))}]";
        if (target.Length != expected.Length) return $"Reshape {name} targets rank {target.Length}; the interleave needs {want}";
        bool allowZero = (Attributes.GetInt(reshape, Ops.Reshape.AllowZero) ?? 0) == 1;
        int inferred = 0;
        for (int i = 0; i < target.Length; i++)
        {
            long v = target[i];
            bool ok = v switch
            {
                -1 => ++inferred == 1,
                0 when !allowZero => i < inputDims.Length && Dim.Same(inputDims[i], expected[i]),
                _ => expected[i].Value > 0 && v == expected[i].Value,
            };
            if (!ok) return $"Reshape {name} target [{string.Join(",", target)}] does not give {want} (entry {i})";
        }
        return null;
    }

    private static long[]? UnsqueezeAxes(GraphIndex index, NodeProto unsqueeze, int outRank)
    {
        long[]? axes = Attributes.GetInts(unsqueeze, Ops.Unsqueeze.Axes);
        if (axes is null && unsqueeze.Input.Count > 1 && unsqueeze.Input[1].Length > 0 && index.Constant(unsqueeze.Input[1]) is { } t)
            axes = Tensors.ToInt64s(t);
        return axes?.Select(a => a < 0 ? a + outRank : a).ToArray();
    }

    /// <summary>True when <paramref name="value"/> is all zeros: a float constant, ConstantOfShape(0) or an Unsqueeze of one.</summary>
    private static bool IsZero(GraphIndex index, string value, int depth)
    {
        if (depth > 4 || value.Length == 0) return false;
        var c = index.Constant(value);
        if (c is not null)
        {
            if (c.DataType != (int)DataType.Float) return false;
            try { return Tensors.ToFloats(c).All(f => f == 0f); }
            catch (InvalidDataException) { return false; }
        }
        var p = index.Producer(value);
        if (p is null) return false;
        if (Is(p, Ops.ConstantOfShape.OpType))
        {
            var vt = Attributes.GetTensor(p, Ops.ConstantOfShape.Value);
            if (vt is null) return true; // default is a float 0
            if (vt.DataType != (int)DataType.Float) return false;
            try { return Tensors.ToFloats(vt).All(f => f == 0f); }
            catch (InvalidDataException) { return false; }
        }
        return Is(p, Ops.Unsqueeze.OpType) && p.Input.Count > 0 && IsZero(index, p.Input[0], depth + 1);
    }

    /// <summary>How many zeros <paramref name="value"/> contributes along <paramref name="axis"/>; adds its generator nodes to <paramref name="nodes"/>.</summary>
    private static long? ZeroExtent(GraphIndex index, string value, int axis, int rank, Dictionary<string, long[]> chainExtents,
        List<NodeProto> nodes, int depth)
    {
        if (depth > 4 || !IsZero(index, value, 0)) return null;
        var c = index.Constant(value);
        if (c is not null) return c.Dims.Count == rank ? c.Dims[axis] : null;
        var p = index.Producer(value)!;
        int j = (axis - 3) / 2;
        if (Is(p, Ops.Unsqueeze.OpType))
        {
            var axes = UnsqueezeAxes(index, p, rank);
            if (axes is null || !axes.Contains(axis)) return null;
            AddAux(p, nodes);
            if (index.Producer(p.Input[0]) is { } inner && Is(inner, Ops.ConstantOfShape.OpType)) AddGenerator(index, inner, nodes);
            return 1;
        }
        // ConstantOfShape(shape): a constant shape, or Shape(t) of a chain value whose extent is known.
        if (p.Input.Count == 0) return null;
        long? extent = null;
        var st = index.Constant(p.Input[0]);
        if (st is not null)
        {
            var dims = Tensors.ToInt64s(st);
            extent = dims.Length == rank ? dims[axis] : null;
        }
        else if (index.Producer(p.Input[0]) is { } shape && Is(shape, Ops.Shape.OpType) && shape.Attribute.Count == 0
                 && chainExtents.TryGetValue(shape.Input[0], out var ext))
            extent = ext[j];
        if (extent is null) return null;
        AddGenerator(index, p, nodes);
        return extent;
    }

    private static void AddGenerator(GraphIndex index, NodeProto constantOfShape, List<NodeProto> nodes)
    {
        AddAux(constantOfShape, nodes);
        if (constantOfShape.Input.Count > 0 && index.Producer(constantOfShape.Input[0]) is { } shape && Is(shape, Ops.Shape.OpType))
            AddAux(shape, nodes);
    }

    private static void AddAux(NodeProto n, List<NodeProto> nodes)
    {
        if (!nodes.Any(x => ReferenceEquals(x, n))) nodes.Add(n);
    }
}
