using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>A small dense float tensor the zero-insertion probe moves through a chain (row-major).</summary>
internal sealed record ProbeTensor(long[] Shape, float[] Data)
{
    public static long Count(long[] shape) => shape.Aggregate(1L, (a, b) => checked(a * b));
    public static ProbeTensor Zeros(long[] shape) => new(shape, new float[Count(shape)]);
    public string ShapeText => $"[{string.Join(",", Shape)}]";
}

/// <summary>
/// Evaluates the data-moving ops a zero-insertion chain may hold (Reshape, Unsqueeze, Concat with constant operands,
/// Pad, Slice, Transpose) on <see cref="ProbeTensor"/>s, reading every other operand as a compile-time constant.
/// Each op follows the ONNX definition (Reshape 0/-1/allowzero, negative Pad = crop, Slice clamping and steps); anything
/// it cannot evaluate statically is a reason, never a guess.
/// </summary>
internal static class ZeroInsertionEvaluator
{
    public static bool IsChainOp(NodeProto n) =>
        Ops.IsDefaultDomain(n.Domain) && n.OpType is Ops.Reshape.OpType or Ops.Unsqueeze.OpType or Ops.Concat.OpType
            or Ops.Pad.OpType or Ops.Slice.OpType or Ops.Transpose.OpType;

    private static bool Is(NodeProto n, string op) => n.OpType == op && Ops.IsDefaultDomain(n.Domain);

    /// <summary>
    /// True when <paramref name="value"/> is a constant-like Concat operand: a constant, ConstantOfShape, or an Unsqueeze
    /// of one (the generators exporters use for zeros).
    /// </summary>
    public static bool IsOperand(GraphIndex index, string value, int depth = 0)
    {
        if (depth > 4 || value.Length == 0) return false;
        if (index.Constant(value) is not null) return true;
        var p = index.Producer(value);
        if (p is null) return false;
        if (Is(p, Ops.ConstantOfShape.OpType)) return true;
        return Is(p, Ops.Unsqueeze.OpType) && p.Input.Count > 0 && IsOperand(index, p.Input[0], depth + 1);
    }

    /// <summary>The generator nodes behind a constant-like operand (ConstantOfShape, its Shape, Unsqueezes).</summary>
    public static void CollectGenerators(GraphIndex index, string value, List<NodeProto> into, int depth = 0)
    {
        var p = index.Producer(value);
        // Constant nodes go through RemoveIfUnused with the other constants.
        if (p is null || depth > 4 || Is(p, Ops.Constant.OpType)) return;
        if (!into.Any(n => ReferenceEquals(n, p))) into.Add(p);
        if (Is(p, Ops.Unsqueeze.OpType)) CollectGenerators(index, p.Input[0], into, depth + 1);
        else if (Is(p, Ops.ConstantOfShape.OpType) && p.Input.Count > 0 && index.Producer(p.Input[0]) is { } s && Is(s, Ops.Shape.OpType)
                 && !into.Any(n => ReferenceEquals(n, s)))
            into.Add(s);
    }

    /// <summary>
    /// Runs <paramref name="n"/> with <paramref name="x"/> for its chain input <paramref name="data"/>. <paramref name="env"/>
    /// holds the chain values evaluated so far (Shape operands read them). With <paramref name="loose"/> (a dynamic dim was
    /// given a trial size) Concat operands count only along the concat axis: hard-coded sizes elsewhere cannot be checked.
    /// </summary>
    public static string? Eval(GraphIndex index, NodeProto n, string data, ProbeTensor x, IReadOnlyDictionary<string, ProbeTensor> env,
        bool loose, out ProbeTensor y)
    {
        y = x;
        string name = Attributes.Describe(n);
        long opset = index.Opset(Ops.DefaultDomain) ?? 1;
        int rank = x.Shape.Length;
        switch (n.OpType)
        {
            case Ops.Reshape.OpType:
            {
                if (n.Input.Count < 2 || index.Constant(n.Input[1]) is not { } t) return $"Reshape {name}: target shape is not a constant";
                long[] target = Tensors.ToInt64s(t);
                bool allowZero = (Attributes.GetInt(n, Ops.Reshape.AllowZero) ?? 0) == 1;
                var shape = new long[target.Length];
                int infer = -1;
                for (int i = 0; i < target.Length; i++)
                {
                    if (target[i] == -1) { if (infer >= 0) return $"Reshape {name}: two -1 entries"; infer = i; shape[i] = 1; }
                    else if (target[i] == 0 && !allowZero)
                    {
                        if (i >= rank) return $"Reshape {name} target [{string.Join(",", target)}] does not give a shape for {x.ShapeText} (entry {i} copies a missing dim)";
                        shape[i] = x.Shape[i];
                    }
                    else if (target[i] < 0) return $"Reshape {name}: target entry {target[i]}";
                    else shape[i] = target[i];
                }
                long known = ProbeTensor.Count(shape), count = x.Data.Length;
                if (infer >= 0)
                {
                    if (known == 0 || count % known != 0) return $"Reshape {name} target [{string.Join(",", target)}] does not give a shape for {x.ShapeText}";
                    shape[infer] = count / known;
                }
                else if (known != count) return $"Reshape {name} target [{string.Join(",", target)}] does not give {count} elements from {x.ShapeText}";
                y = new ProbeTensor(shape, x.Data);
                return null;
            }
            case Ops.Unsqueeze.OpType:
            {
                var axes = Axes(index, n, opset < 13, rank + 0, out int outRank);
                if (axes is null) return $"Unsqueeze {name}: axes are not constant";
                outRank = rank + axes.Length;
                var norm = axes.Select(a => a < 0 ? a + outRank : a).ToHashSet();
                if (norm.Count != axes.Length || norm.Any(a => a < 0 || a >= outRank)) return $"Unsqueeze {name}: bad axes [{string.Join(",", axes)}]";
                var shape = new long[outRank];
                for (int i = 0, k = 0; i < outRank; i++) shape[i] = norm.Contains(i) ? 1 : x.Shape[k++];
                y = new ProbeTensor(shape, x.Data);
                return null;
            }
            case Ops.Transpose.OpType:
            {
                long[] perm = Attributes.GetInts(n, Ops.Transpose.Perm) ?? Enumerable.Range(0, rank).Reverse().Select(i => (long)i).ToArray();
                if (perm.Length != rank || perm.Distinct().Count() != rank || perm.Any(p => p < 0 || p >= rank))
                    return $"Transpose {name}: perm [{string.Join(",", perm)}] does not fit rank {rank}";
                var shape = perm.Select(p => x.Shape[p]).ToArray();
                y = Gather(x, shape, (idx, src) => { for (int i = 0; i < rank; i++) src[perm[i]] = idx[i]; return true; });
                return null;
            }
            case Ops.Pad.OpType:
            {
                string? why = ZeroInsertionPad.Read(index, n, rank, out var pads);
                if (why is not null) return why;
                var shape = new long[rank];
                for (int i = 0; i < rank; i++) shape[i] = x.Shape[i] + pads[i] + pads[rank + i];
                if (shape.Any(d => d < 0)) return $"Pad {name} crops {x.ShapeText} below zero";
                y = Gather(x, shape, (idx, src) =>
                {
                    for (int i = 0; i < rank; i++) { src[i] = idx[i] - pads[i]; if (src[i] < 0 || src[i] >= x.Shape[i]) return false; }
                    return true;
                });
                return null;
            }
            case Ops.Slice.OpType:
            {
                string? why = ReadSlice(index, n, opset, rank, x.Shape, out var start, out var step, out var shape);
                if (why is not null) return why;
                y = Gather(x, shape, (idx, src) => { for (int i = 0; i < rank; i++) src[i] = start[i] + idx[i] * step[i]; return true; });
                return null;
            }
            case Ops.Concat.OpType:
            {
                long axis = Attributes.GetInt(n, Ops.Concat.Axis) ?? long.MinValue;
                if (axis < 0) axis += rank;
                if (axis < 0 || axis >= rank) return $"Concat {name}: axis {Attributes.GetInt(n, Ops.Concat.Axis)} out of range for rank {rank}";
                var parts = new List<ProbeTensor>();
                foreach (var input in n.Input)
                {
                    ProbeTensor part;
                    if (input == data) part = x;
                    else
                    {
                        string? w = Operand(index, input, env, out part, 0);
                        if (w is not null) return $"Concat {name}: {w}";
                        if (part.Shape.Length != rank) return $"Concat {name}: '{input}' has rank {part.Shape.Length}, not {rank}";
                        if (loose) part = new ProbeTensor(x.Shape.Select((d, i) => i == axis ? part.Shape[i] : d).ToArray(), Broadcastable(part, x.Shape, (int)axis));
                    }
                    for (int i = 0; i < rank; i++)
                        if (i != axis && part.Shape[i] != x.Shape[i])
                            return $"Concat {name}: '{input}' is {part.ShapeText}; the chain value is {x.ShapeText}";
                    parts.Add(part);
                }
                var shape = (long[])x.Shape.Clone();
                shape[axis] = parts.Sum(p => p.Shape[axis]);
                var outData = new float[ProbeTensor.Count(shape)];
                long outer = x.Shape.Take((int)axis).Aggregate(1L, (a, b) => a * b);
                long inner = x.Shape.Skip((int)axis + 1).Aggregate(1L, (a, b) => a * b);
                long o = 0;
                for (long b = 0; b < outer; b++)
                    foreach (var p in parts)
                    {
                        long len = p.Shape[axis] * inner;
                        Array.Copy(p.Data, b * len, outData, o, len);
                        o += len;
                    }
                y = new ProbeTensor(shape, outData);
                return null;
            }
        }
        return $"{n.OpType} {name} is not a zero-insertion op";
    }

    /// <summary>A loose operand keeps its values only when they do not depend on the other axes (all equal): else NaN marks them.</summary>
    private static float[] Broadcastable(ProbeTensor part, long[] like, int axis)
    {
        var shape = like.Select((d, i) => i == axis ? part.Shape[i] : d).ToArray();
        float v = part.Data.Length > 0 ? part.Data[0] : 0f;
        bool uniform = part.Data.All(f => f == v);
        return Enumerable.Repeat(uniform ? v : float.NaN, (int)ProbeTensor.Count(shape)).ToArray();
    }

    /// <summary>y[idx] = x[src] where <paramref name="map"/> fills src from idx (false: a zero).</summary>
    private static ProbeTensor Gather(ProbeTensor x, long[] shape, Func<long[], long[], bool> map)
    {
        int rank = shape.Length, xr = x.Shape.Length;
        var data = new float[ProbeTensor.Count(shape)];
        var idx = new long[rank];
        var src = new long[xr];
        for (long f = 0; f < data.Length; f++)
        {
            long rem = f;
            for (int i = rank - 1; i >= 0; i--) { idx[i] = rem % shape[i]; rem /= shape[i]; }
            if (!map(idx, src)) continue;
            long s = 0;
            for (int i = 0; i < xr; i++) s = s * x.Shape[i] + src[i];
            data[f] = x.Data[s];
        }
        return new ProbeTensor(shape, data);
    }

    private static long[]? Axes(GraphIndex index, NodeProto n, bool asAttribute, int rank, out int outRank)
    {
        outRank = rank;
        if (asAttribute || n.Input.Count < 2 || n.Input[1].Length == 0) return Attributes.GetInts(n, Ops.Unsqueeze.Axes);
        return index.Constant(n.Input[1]) is { } t ? Tensors.ToInt64s(t) : null;
    }

    /// <summary>A constant-like Concat operand's value: a float constant, ConstantOfShape(constant or Shape(chain value)), Unsqueeze of one.</summary>
    private static string? Operand(GraphIndex index, string value, IReadOnlyDictionary<string, ProbeTensor> env, out ProbeTensor t, int depth)
    {
        t = ProbeTensor.Zeros([]);
        if (depth > 4) return $"'{value}' is too deep a constant";
        if (index.Constant(value) is { } c)
        {
            if (c.DataType != (int)DataType.Float) return $"'{value}' is {(DataType)c.DataType}; only float32 is rewritten";
            try { t = new ProbeTensor(c.Dims.ToArray(), index.Floats(c)); }
            catch (InvalidDataException e) { return e.Message; }
            return null;
        }
        var p = index.Producer(value);
        if (p is not null && Is(p, Ops.ConstantOfShape.OpType) && p.Input.Count > 0)
        {
            long[]? shape = index.Constant(p.Input[0]) is { } st ? Tensors.ToInt64s(st) : null;
            if (shape is null && index.Producer(p.Input[0]) is { } s && Is(s, Ops.Shape.OpType) && s.Attribute.Count == 0
                && env.TryGetValue(s.Input[0], out var of))
                shape = of.Shape;
            if (shape is null || shape.Any(d => d < 0)) return $"the shape of '{value}' is not known statically";
            var vt = Attributes.GetTensor(p, Ops.ConstantOfShape.Value);
            float v = 0f;
            if (vt is not null)
            {
                if (vt.DataType != (int)DataType.Float) return $"'{value}' is {(DataType)vt.DataType}; only float32 is rewritten";
                var vs = Tensors.ToFloats(vt);
                if (vs.Length != 1) return $"ConstantOfShape {Attributes.Describe(p)} value has {vs.Length} elements";
                v = vs[0];
            }
            t = new ProbeTensor(shape, Enumerable.Repeat(v, (int)ProbeTensor.Count(shape)).ToArray());
            return null;
        }
        if (p is not null && Is(p, Ops.Unsqueeze.OpType) && p.Input.Count > 0)
        {
            string? why = Operand(index, p.Input[0], env, out var inner, depth + 1);
            if (why is not null) return why;
            why = Eval(index, p, p.Input[0], inner, env, false, out t);
            return why;
        }
        return $"'{value}' is not a constant";
    }

    /// <summary>Slice's per-axis start/step/length (opset 1 attributes, from 10 inputs), clamped as ONNX defines.</summary>
    private static string? ReadSlice(GraphIndex index, NodeProto n, long opset, int rank, long[] dims,
        out long[] start, out long[] step, out long[] shape)
    {
        start = new long[rank]; step = Enumerable.Repeat(1L, rank).ToArray(); shape = (long[])dims.Clone();
        string name = Attributes.Describe(n);
        long[]? starts, ends, axes = null, steps = null;
        if (opset < 10)
        {
            starts = Attributes.GetInts(n, Ops.Slice.Starts);
            ends = Attributes.GetInts(n, Ops.Slice.Ends);
            axes = Attributes.GetInts(n, Ops.Slice.Axes);
        }
        else
        {
            long[]? In(int i) => n.Input.Count > i && n.Input[i].Length > 0 ? (index.Constant(n.Input[i]) is { } t ? Tensors.ToInt64s(t) : null) : [];
            starts = In(1); ends = In(2); axes = In(3); steps = In(4);
            if (axes is { Length: 0 }) axes = null;
            if (steps is { Length: 0 }) steps = null;
        }
        if (starts is null || ends is null || (opset >= 10 && (n.Input.Count > 3 && n.Input[3].Length > 0 && axes is null)))
            return $"Slice {name}: starts/ends/axes are not constant";
        if (opset >= 10 && n.Input.Count > 4 && n.Input[4].Length > 0 && steps is null) return $"Slice {name}: steps are not constant";
        axes ??= Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        steps ??= Enumerable.Repeat(1L, starts.Length).ToArray();
        if (ends.Length != starts.Length || axes.Length != starts.Length || steps.Length != starts.Length)
            return $"Slice {name}: starts/ends/axes/steps differ in length";
        for (int i = 0; i < starts.Length; i++)
        {
            long a = axes[i] < 0 ? axes[i] + rank : axes[i];
            if (a < 0 || a >= rank) return $"Slice {name}: axis {axes[i]} out of range";
            long d = dims[a], st = steps[i];
            if (st == 0) return $"Slice {name}: step 0";
            long s = starts[i] < 0 ? starts[i] + d : starts[i];
            long e = ends[i] < 0 ? ends[i] + d : ends[i];
            if (st > 0) { s = Math.Clamp(s, 0, d); e = Math.Clamp(e, 0, d); }
            else { s = Math.Clamp(s, 0, d - 1); e = Math.Clamp(e, -1, d - 1); }
            long len = st > 0 ? Math.Max(0, (e - s + st - 1) / st) : Math.Max(0, (s - e + -st - 1) / -st);
            start[a] = s; step[a] = st; shape[a] = len;
        }
        return null;
    }
}
