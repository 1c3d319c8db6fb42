using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Lowering;

/// <summary>
/// Lowerings compute their weights in float32; for a float16/bfloat16 node the float32 initializers they emit are
/// narrowed back to the node's type (integer shape/index tensors stay as they are). Weights that were only rearranged
/// come back bit-identical (they were widened exactly); computed ones (summed taps, folded scales) are rounded once.
/// </summary>
public static class HalfInitializers
{
    public static LoweredNodes Narrow(LoweredNodes lowered, DataType type) =>
        HalfFloats.IsHalf(type) ? lowered with { Initializers = Narrow(lowered.Initializers, type) } : lowered;

    public static IReadOnlyList<TensorProto> Narrow(IReadOnlyList<TensorProto> initializers, DataType type) =>
        HalfFloats.IsHalf(type) ? initializers.Select(t => Narrow(t, type)).ToList() : initializers;

    public static TensorProto Narrow(TensorProto t, DataType type)
    {
        if (!HalfFloats.IsHalf(type) || t.DataType != (int)DataType.Float) return t;
        if (ExternalData.IsExternal(t))
            throw new InvalidOperationException($"tensor '{t.Name}': a float32 weight written to external data cannot be narrowed to {type}");
        return HalfFloats.Tensor(t.Name, type, t.Dims.ToArray(), Tensors.ToFloats(t));
    }
}
