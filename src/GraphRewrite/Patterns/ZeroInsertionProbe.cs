using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>A chain of data-moving ops from <see cref="Input"/> to the Conv, in graph order, with the chain value each node reads.</summary>
internal sealed record ZeroInsertionChain(string Input, long[] InputShape, IReadOnlyList<(NodeProto Node, string Data)> Steps,
    IReadOnlyList<NodeProto> Generators)
{
    /// <summary>The op sequence, repeats collapsed ("Reshape/Concat/Reshape/Concat").</summary>
    public string Style
    {
        get
        {
            var ops = new List<string>();
            foreach (var (n, _) in Steps) if (ops.Count == 0 || ops[^1] != n.OpType) ops.Add(n.OpType);
            return string.Join("/", ops);
        }
    }
}

/// <summary>Per spatial axis: stride, and zeros before / after the standard stuffed length s*I (negative after = crop).</summary>
internal sealed record ProbeGeometry(long[] Strides, long[] PadBegin, long[] PadEnd);

/// <summary>
/// Recognises zero insertion by what a chain does, not by which ops it uses: the chain is run on an index probe (the
/// values 1..N at the input's shape) and on zeros. It is zero insertion when the zero run stays zero (every gap is a
/// zero, no constant leaks in) and the probe lands every input value exactly once at
/// <c>[n, c, s_j*i_j + b_j]</c>: stride s_j and leading zeros b_j per axis; trailing zeros follow from the output length.
/// A dynamic dim is tried at two sizes, which must agree, so hard-coded sizes that only fit one are refused.
/// </summary>
internal static class ZeroInsertionProbe
{
    private const long MaxProbe = 1L << 24; // float32 holds every integer up to 2^24 exactly

    private static bool Is(NodeProto n, string op) => n.OpType == op && Ops.IsDefaultDomain(n.Domain);

    /// <summary>The longest linear chain of allowed ops ending in <paramref name="convInput"/>, nearest the Conv first.</summary>
    public static List<(NodeProto Node, string Data)> Walk(GraphIndex index, string convInput)
    {
        var steps = new List<(NodeProto, string)>();
        string cur = convInput;
        for (int guard = 0; guard < 64; guard++)
        {
            var p = index.Producer(cur);
            if (p is null || !ZeroInsertionEvaluator.IsChainOp(p) || p.Input.Count == 0) break;
            string? data;
            if (Is(p, Ops.Concat.OpType))
            {
                var chain = p.Input.Where(i => !ZeroInsertionEvaluator.IsOperand(index, i)).Distinct().ToList();
                data = chain.Count == 1 ? chain[0] : null;
            }
            else data = index.IsConstant(p.Input[0]) ? null : p.Input[0];
            if (data is null) break;
            steps.Add((p, data));
            cur = data;
        }
        return steps;
    }

    /// <summary>Worth a reason when it fails: the chain moves data between axes and adds values (Concat or Pad).</summary>
    public static bool LooksLike(IReadOnlyList<(NodeProto Node, string Data)> steps) =>
        steps.Any(s => Is(s.Node, Ops.Concat.OpType) || Is(s.Node, Ops.Pad.OpType))
        && steps.Any(s => Is(s.Node, Ops.Reshape.OpType) || Is(s.Node, Ops.Unsqueeze.OpType) || Is(s.Node, Ops.Transpose.OpType));

    /// <summary>
    /// The farthest chain start of rank 2 + <paramref name="spatial"/> whose probe shows zero insertion; otherwise the
    /// reason found at the farthest such start.
    /// </summary>
    /// <param name="known">Exact static shapes from elsewhere (ONNX Runtime's probe, or propagation from fully static inputs) for values without value_info.</param>
    public static string? Find(GraphIndex index, string convInput, int spatial, long channels, Func<string, long[]?>? known,
        out ZeroInsertionChain? chain, out ProbeGeometry? geometry)
    {
        chain = null; geometry = null;
        var walk = Walk(index, convInput);
        if (walk.Count == 0)
            return $"'{convInput}' is not produced by a zero-insertion chain (Reshape/Unsqueeze/Concat/Pad/Slice/Transpose)";
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal); // static shapes learnt by running the chain
        string? reason = null;
        for (int i = walk.Count - 1; i >= 0; i--)
        {
            string input = walk[i].Data;
            var steps = walk.Take(i + 1).Reverse().ToList();
            long[]? shape = index.Shape(input);
            if (shape is null || shape.Any(v => v <= 0)) shape = shapes.GetValueOrDefault(input) ?? shape;
            if ((shape is null || shape.Any(v => v <= 0)) && known?.Invoke(input) is { } k && k.All(v => v > 0)) shape = k;
            if (shape is not null && shape.All(v => v > 0) && shape.Length != 2 + spatial)
            {
                LearnShapes(index, steps, input, shape, shapes); // a flattened start (e.g. after a Gemm) tells later starts their shape
                continue;
            }
            string? why = Try(index, input, shape, steps, spatial, channels, out var g);
            if (why is null)
            {
                var generators = new List<NodeProto>();
                foreach (var (n, data) in steps.Where(s => Is(s.Node, Ops.Concat.OpType)))
                    foreach (var operand in n.Input.Where(x => x != data)) ZeroInsertionEvaluator.CollectGenerators(index, operand, generators);
                chain = new ZeroInsertionChain(input, shape!, steps, generators);
                geometry = g;
                return null;
            }
            reason ??= why;
            if (shape is not null && shape.All(v => v > 0)) LearnShapes(index, steps, input, shape, shapes);
        }
        return reason ?? $"'{walk[^1].Data}' has no {2 + spatial}D shape to probe; the Conv is {spatial}D";
    }

    private static string? Try(GraphIndex index, string input, long[]? shape, List<(NodeProto Node, string Data)> steps, int spatial, long channels,
        out ProbeGeometry? geometry)
    {
        geometry = null;
        if (shape is null) return $"'{input}' has no declared shape (value_info); run ONNX shape inference so the interleave can be confirmed";
        if (shape.Length != 2 + spatial) return $"'{input}' has rank {shape.Length}; the Conv is {spatial}D";
        if (shape[1] > 0 && shape[1] != channels) return $"'{input}' has {shape[1]} channels; the Conv expects {channels}";
        var trials = shape.All(v => v > 0) ? [shape] : new[] { 2L, 3L }.Select(t => shape.Select((v, k) => v > 0 ? v : k == 1 ? channels : t).ToArray()).ToList();
        foreach (var trial in trials)
        {
            bool loose = !trial.SequenceEqual(shape);
            string? why = Run(index, input, trial, steps, loose, out var g);
            if (why is not null) return loose ? $"{why} (dynamic dims tried at [{string.Join(",", trial)}])" : why;
            if (geometry is not null && !(geometry.Strides.SequenceEqual(g!.Strides) && geometry.PadBegin.SequenceEqual(g.PadBegin) && geometry.PadEnd.SequenceEqual(g.PadEnd)))
                return "the zero insertion depends on the size of a dynamic dim (hard-coded sizes in the chain)";
            geometry = g;
        }
        return null;
    }

    private static void LearnShapes(GraphIndex index, List<(NodeProto Node, string Data)> steps, string input, long[] shape, Dictionary<string, long[]> shapes)
    {
        if (ProbeTensor.Count(shape) > MaxProbe) return;
        var env = new Dictionary<string, ProbeTensor>(StringComparer.Ordinal) { [input] = ProbeTensor.Zeros(shape) };
        var cur = env[input];
        foreach (var (n, data) in steps)
        {
            if (ZeroInsertionEvaluator.Eval(index, n, data, cur, env, false, out var y) is not null) return;
            env[n.Output[0]] = cur = y;
            shapes.TryAdd(n.Output[0], y.Shape);
        }
    }

    /// <summary>Runs the chain on the probe and on zeros at <paramref name="shape"/> and reads the geometry off the result.</summary>
    private static string? Run(GraphIndex index, string input, long[] shape, List<(NodeProto Node, string Data)> steps, bool loose, out ProbeGeometry? geometry)
    {
        geometry = null;
        long count = ProbeTensor.Count(shape);
        if (count > MaxProbe) return $"'{input}' has {count} elements; too many to probe exactly";
        var probe = new float[count];
        for (long i = 0; i < count; i++) probe[i] = i + 1;
        var p = new ProbeTensor(shape, probe);
        var z = ProbeTensor.Zeros(shape);
        var envP = new Dictionary<string, ProbeTensor>(StringComparer.Ordinal) { [input] = p };
        var envZ = new Dictionary<string, ProbeTensor>(StringComparer.Ordinal) { [input] = z };
        foreach (var (n, data) in steps)
        {
            string? why = ZeroInsertionEvaluator.Eval(index, n, data, p, envP, loose, out p)
                          ?? ZeroInsertionEvaluator.Eval(index, n, data, z, envZ, loose, out z);
            if (why is not null) return why;
            envP[n.Output[0]] = p;
            envZ[n.Output[0]] = z;
        }
        return Analyse(shape, p, z, out geometry);
    }

    /// <summary>Is <paramref name="y"/> a zero-stuffed, zero-bordered copy of the probe at <paramref name="shape"/>? Why not, else.</summary>
    internal static string? Analyse(long[] shape, ProbeTensor y, ProbeTensor zeroRun, out ProbeGeometry? geometry)
    {
        geometry = null;
        if (zeroRun.Data.Any(v => v != 0f)) return "not every gap is zero: the chain inserts nonzero constants";
        int rank = shape.Length;
        if (y.Shape.Length != rank) return $"the chain turns [{string.Join(",", shape)}] into {y.ShapeText}, not a zero-stuffed copy of the same rank";
        if (y.Shape[0] != shape[0] || y.Shape[1] != shape[1])
            return $"the chain changes the batch or channel axis ([{string.Join(",", shape)}] -> {y.ShapeText})";
        long count = ProbeTensor.Count(shape);
        var pos = new long[count];
        Array.Fill(pos, -1);
        long found = 0;
        for (long f = 0; f < y.Data.Length; f++)
        {
            float v = y.Data[f];
            if (v == 0f) continue;
            long src = (long)v - 1;
            if (src < 0 || src >= count || src + 1 != v) return "not every gap is zero: the chain mixes in values that are not the input's";
            if (pos[src] >= 0) return "the chain duplicates values (an input value appears twice)";
            pos[src] = f;
            found++;
        }
        if (found < count) return $"the chain drops input values ({count - found} of {count} missing)";
        long[] Coords(long flat, long[] dims)
        {
            var c = new long[dims.Length];
            for (int i = dims.Length - 1; i >= 0; i--) { c[i] = flat % dims[i]; flat /= dims[i]; }
            return c;
        }
        var origin = Coords(pos[0], y.Shape);
        int sp = rank - 2;
        long[] strides = new long[sp], begin = new long[sp], end = new long[sp];
        long unit = 1;
        for (int j = sp - 1; j >= 0; j--)
        {
            begin[j] = origin[2 + j];
            strides[j] = shape[2 + j] > 1 ? Coords(pos[unit], y.Shape)[2 + j] - begin[j] : 1;
            if (strides[j] < 1) return "the chain permutes values (the input's order along an axis is not kept)";
            unit *= shape[2 + j];
        }
        for (long src = 0; src < count; src++)
        {
            var s = Coords(src, shape);
            var t = Coords(pos[src], y.Shape);
            if (t[0] != s[0] || t[1] != s[1]) return "the chain permutes values (across the batch or channel axis)";
            for (int j = 0; j < sp; j++)
                if (t[2 + j] != strides[j] * s[2 + j] + begin[j]) return "the chain permutes values (not an evenly stuffed copy)";
        }
        if (strides.All(v => v == 1)) return "no zeros are inserted between values (stride 1 on every axis)";
        for (int j = 0; j < sp; j++) end[j] = y.Shape[2 + j] - strides[j] * shape[2 + j] - begin[j];
        geometry = new ProbeGeometry(strides, begin, end);
        return null;
    }
}
