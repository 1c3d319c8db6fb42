using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Runtime;

/// <summary>
/// Attribute values ONNX Runtime 1.31 divides by without checking: a model with group 0 on a ConvTranspose kills the
/// whole process with SIGFPE during session creation (found by tools/fuzz). Checked on every graph (subgraphs too)
/// before a session is created; a violation is a <see cref="ModelFormatException"/> naming the node and attribute.
/// </summary>
public static class NativeGuard
{
    private static readonly HashSet<string> ConvLike = new(StringComparer.Ordinal)
    {
        Ops.Conv.OpType, Ops.ConvTranspose.OpType, Ops.ConvInteger.OpType, Ops.QLinearConv.OpType,
    };

    private static readonly HashSet<string> PoolLike = new(StringComparer.Ordinal)
    {
        Ops.MaxPool.OpType, Ops.AveragePool.OpType, Ops.LpPool.OpType,
    };

    public static void Check(ModelProto model, string source)
    {
        if (model.Graph is null) return;
        foreach (var g in Topology.AllGraphs(model))
            foreach (var n in g.Node)
            {
                if (!Ops.IsDefaultDomain(n.Domain)) continue;
                bool conv = ConvLike.Contains(n.OpType);
                if (conv || PoolLike.Contains(n.OpType))
                {
                    if (conv) Positive(n, Ops.Conv.Group, source);
                    Positive(n, Ops.Conv.Strides, source);
                    Positive(n, Ops.Conv.Dilations, source);
                }
                else if (n.OpType == Ops.DepthToSpace.OpType || n.OpType == Ops.SpaceToDepth.OpType)
                    Positive(n, Ops.DepthToSpace.BlockSize, source);
            }
    }

    private static void Positive(NodeProto n, string attribute, string source)
    {
        var a = Attributes.Find(n, attribute);
        // Absent, or of the wrong type: ONNX Runtime reports a type mismatch itself (no division happens).
        long[] values = a?.Type switch
        {
            AttributeProto.Types.AttributeType.Int => [a.I],
            AttributeProto.Types.AttributeType.Ints => a.Ints.ToArray(),
            _ => [],
        };
        long bad = values.FirstOrDefault(v => v <= 0, 1);
        if (bad <= 0)
            throw new ModelFormatException(
                $"{source}: node {Attributes.Describe(n)}: attribute '{attribute}' has value {bad}; it must be >= 1 (refused before ONNX Runtime, which would divide by it)");
    }
}
