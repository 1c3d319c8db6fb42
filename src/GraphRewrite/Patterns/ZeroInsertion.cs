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
/// Zero insertion in front of a stride-1 Conv, recognised by what the chain does rather than by its op sequence: any
/// linear chain of Reshape/Unsqueeze/Concat-with-constants/Pad/Slice/Transpose (static shapes and constants) that turns
/// an index probe into a zero-stuffed, zero-bordered copy of it (<see cref="ZeroInsertionProbe"/>). The interleaves
/// exporters write all qualify: Reshape/Pad/Reshape, Unsqueeze/Concat/Reshape, Reshape[-1,1]/Concat(zeros)/Reshape per
/// axis with borders concatenated, extra Pads or Slices that crop. Never throws: false with a reason.
/// </summary>
public static class ZeroInsertion
{
    public static bool IsConv(NodeProto node) => node.OpType == C.OpType && Ops.IsDefaultDomain(node.Domain);

    /// <summary>True when <paramref name="conv"/> reads a zero-stuffed tensor this matcher understands; otherwise a reason.</summary>
    /// <param name="known">Exact static shapes for values without value_info (see <see cref="ZeroInsertionProbe.Find"/>).</param>
    public static bool TryMatch(GraphIndex index, NodeProto conv, out ZeroInsertionMatch? match, out string? reason,
        Func<string, long[]?>? known = null) =>
        SafeMatch.Try((out ZeroInsertionMatch? m) => Check(index, conv, known, out m), out match, out reason);

    /// <summary>
    /// True when the Conv's data input comes through a chain that moves data between axes and adds values (Concat or
    /// Pad): worth reporting why a match failed.
    /// </summary>
    public static bool LooksLikeZeroInsertion(GraphIndex index, NodeProto conv) =>
        IsConv(conv) && conv.Input.Count > 0 && ZeroInsertionProbe.LooksLike(ZeroInsertionProbe.Walk(index, conv.Input[0]));

    /// <summary>The values a zero-insertion chain in front of <paramref name="conv"/> may start from (for a shape probe to cover).</summary>
    public static IEnumerable<string> ChainValues(GraphIndex index, NodeProto conv) =>
        IsConv(conv) && conv.Input.Count > 0 ? ZeroInsertionProbe.Walk(index, conv.Input[0]).Select(s => s.Data) : [];

    private static string? Check(GraphIndex index, NodeProto conv, Func<string, long[]?>? known, out ZeroInsertionMatch? match)
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

        string? notZi = ZeroInsertionProbe.Find(index, conv.Input[0], r, cin, known, out var chain, out var geo);
        if (notZi is not null) return notZi;
        var nodes = chain!.Steps.Select(st => st.Node).Reverse().Concat(chain.Generators).ToList();
        long[] strides = geo!.Strides, xs = chain.InputShape;
        string x = chain.Input;
        var n0 = xs[0];
        var sp = xs[2..];

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

        long[] padBegin = new long[r], padEnd = new long[r];
        for (int j = 0; j < r; j++)
        {
            padBegin[j] = geo.PadBegin[j] + convPads[j];
            padEnd[j] = geo.PadEnd[j] + convPads[r + j];
        }
        long macs = 0;
        if (n0 > 0 && sp.All(d => d > 0))
        {
            macs = checked(n0 * cout * (cin / group));
            for (int j = 0; j < r; j++)
            {
                long o = strides[j] * sp[j] + padBegin[j] + padEnd[j] - kernel[j] + 1;
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
            Style = chain.Style,
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
}
