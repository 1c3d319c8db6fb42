using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;

namespace OnnxDeconv.GraphRewrite.Rewrites;

/// <summary>
/// Best-effort static shapes of values without value_info, propagated from the graph inputs through the few ops that
/// usually precede a ConvTranspose (Conv, ConvTranspose, pooling, BatchNorm, activations, same-shape binary ops,
/// Concat), seeded with the graph inputs' shapes as the symbolic-dims policy resolves them (--shape, declared, batch 1:
/// docs/shapes.md). Used for MACs, and for a ConvTranspose with output_shape whose input size only these know (the
/// site is then specialised to that size and the graph input declared with it).
/// </summary>
internal static class ShapeHints
{
    private static readonly HashSet<string> SameShapeOps = new(StringComparer.Ordinal)
    {
        Ops.Relu.OpType, Ops.LeakyRelu.OpType, Ops.PRelu.OpType, Ops.Sigmoid.OpType, Ops.Tanh.OpType, Ops.Elu.OpType,
        Ops.Identity.OpType, Ops.BatchNormalization.OpType, Ops.InstanceNormalization.OpType, Ops.Clip.OpType, Ops.Dropout.OpType,
    };

    private static readonly HashSet<string> BinaryOps = new(StringComparer.Ordinal)
    {
        Ops.Add.OpType, Ops.Sub.OpType, Ops.Mul.OpType, Ops.Div.OpType,
    };

    public static Dictionary<string, long[]> Infer(ModelProto model, IReadOnlyDictionary<string, long[]>? inputShapes = null)
    {
        var index = new GraphIndex(model);
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (name, dims) in inputShapes ?? new Dictionary<string, long[]>())
            if (index.IsGraphInput(name)) shapes[name] = dims;
        long[]? Known(string name)
        {
            if (shapes.TryGetValue(name, out var s)) return s;
            var declared = index.Shape(name);
            if (declared is null || declared.Length == 0 || declared.Skip(1).Any(d => d < 0)) return null;
            // A symbolic batch counts as 1: reported MACs are per image.
            return declared[0] >= 0 ? declared : [1, .. declared.Skip(1)];
        }
        foreach (var node in model.Graph.Node)
        {
            if (!Ops.IsDefaultDomain(node.Domain) || node.Output.Count == 0 || node.Input.Count == 0) continue;
            long[]? result = null;
            try { result = Propagate(node, Known); }
            catch (Exception e) when (e is AttributeException or GeometryException or ArgumentException or OverflowException or IndexOutOfRangeException) { }
            if (result is not null && Known(node.Output[0]) is null) shapes[node.Output[0]] = result;
        }
        return shapes;
    }

    private static long[]? Propagate(NodeProto node, Func<string, long[]?> known)
    {
        var x = known(node.Input[0]);
        if (SameShapeOps.Contains(node.OpType)) return x;
        if (BinaryOps.Contains(node.OpType) && node.Input.Count == 2)
        {
            var y = known(node.Input[1]);
            return x is null || y is null ? null : Broadcast(x, y);
        }
        if (x is null) return null;
        switch (node.OpType)
        {
            case Ops.ConvTranspose.OpType:
            {
                var w = known(node.Input[1]);
                return w is null ? null : ConvTransposeGeometry.Resolve(ConvTransposeNode.ReadAttributes(node), x, w).OutputShape;
            }
            case Ops.Conv.OpType:
            {
                var w = known(node.Input[1]);
                if (w is null) return null;
                return Windowed(node, x, w[0], w.Skip(2).ToArray());
            }
            case Ops.MaxPool.OpType or Ops.AveragePool.OpType:
            {
                if ((Attributes.GetInt(node, Ops.MaxPool.CeilMode) ?? 0) != 0) return null;
                var k = Attributes.GetInts(node, Ops.Conv.KernelShape);
                return k is null ? null : Windowed(node, x, x[1], k);
            }
            case Ops.Concat.OpType:
            {
                long axis = Attributes.GetInt(node, Ops.Concat.Axis) ?? 1;
                var all = node.Input.Select(known).ToList();
                if (all.Any(s => s is null || s.Length != x.Length)) return null;
                if (axis < 0) axis += x.Length;
                var r = (long[])x.Clone();
                r[axis] = all.Sum(s => s![axis]);
                return r;
            }
            default:
                return null;
        }
    }

    /// <summary>Conv/pool output: explicit pads, VALID, or SAME (ceil(I/s)).</summary>
    private static long[]? Windowed(NodeProto node, long[] x, long channels, long[] k)
    {
        int r = x.Length - 2;
        if (k.Length != r) return null;
        long[] s = Attributes.GetInts(node, Ops.Conv.Strides) ?? Enumerable.Repeat(1L, r).ToArray();
        long[] d = Attributes.GetInts(node, Ops.Conv.Dilations) ?? Enumerable.Repeat(1L, r).ToArray();
        long[] p = Attributes.GetInts(node, Ops.Conv.Pads) ?? new long[2 * r];
        var autoPad = ConvTransposeAttributes.ParseAutoPad(Attributes.GetString(node, Ops.Conv.AutoPad));
        var o = new long[x.Length];
        o[0] = x[0];
        o[1] = channels;
        for (int i = 0; i < r; i++)
        {
            long I = x[i + 2];
            o[i + 2] = autoPad switch
            {
                AutoPad.SameUpper or AutoPad.SameLower => (I + s[i] - 1) / s[i],
                AutoPad.Valid => (I - d[i] * (k[i] - 1) - 1) / s[i] + 1,
                _ => (I + p[i] + p[i + r] - d[i] * (k[i] - 1) - 1) / s[i] + 1,
            };
            if (o[i + 2] <= 0) return null;
        }
        return o;
    }

    private static long[]? Broadcast(long[] a, long[] b)
    {
        int n = Math.Max(a.Length, b.Length);
        var r = new long[n];
        for (int i = 0; i < n; i++)
        {
            long da = i - (n - a.Length) >= 0 ? a[i - (n - a.Length)] : 1;
            long db = i - (n - b.Length) >= 0 ? b[i - (n - b.Length)] : 1;
            if (da != db && da != 1 && db != 1) return null;
            r[i] = Math.Max(da, db);
        }
        return r;
    }
}
