using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.IO;

/// <summary>
/// Converts a float32 model to float16 or bfloat16 the way exporters' "convert to half" passes do: every FLOAT
/// initializer, Constant value and declared FLOAT value (graph inputs, outputs, value_info) takes the half type, values
/// rounded to nearest even. Tensors that must stay float32 by the op's schema (Resize/Upsample roi and scales) are kept.
/// Used to make the float16 demo and test models from their float32 builders.
/// </summary>
public static class HalfModel
{
    public static ModelProto Convert(ModelProto model, DataType type)
    {
        if (!HalfFloats.IsHalf(type)) throw new ArgumentException($"{type} is not FLOAT16 or BFLOAT16");
        var m = model.Clone();
        var g = m.Graph;
        // Inputs 1.. of Resize (roi, scales) and Upsample (scales) are float32 whatever X is.
        var keep = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in g.Node)
            if (Ops.IsDefaultDomain(n.Domain) && n.OpType is "Resize" or "Upsample")
                foreach (var i in n.Input.Skip(1)) keep.Add(i);

        foreach (var n in g.Node)
        {
            if (n.OpType == "Cast" || n.Attribute.Any(a => a.Name == "dtype" || a.Name == "to"))
                throw new ArgumentException($"node '{n.Name}' ({n.OpType}) names an element type; converting it is not supported");
            if (n.OpType == "Constant" && !keep.Contains(n.Output[0]))
                foreach (var a in n.Attribute)
                    if (a.T is { } t && t.DataType == (int)DataType.Float) a.T = ConvertTensor(model, t, type);
        }
        for (int i = 0; i < g.Initializer.Count; i++)
            if (g.Initializer[i].DataType == (int)DataType.Float && !keep.Contains(g.Initializer[i].Name))
                g.Initializer[i] = ConvertTensor(model, g.Initializer[i], type);
        foreach (var vi in g.Input.Concat(g.Output).Concat(g.ValueInfo))
            if (vi.Type?.TensorType is { ElemType: (int)DataType.Float } tt && !keep.Contains(vi.Name))
                tt.ElemType = (int)type;
        return m;
    }

    private static TensorProto ConvertTensor(ModelProto model, TensorProto t, DataType type)
    {
        var converted = HalfFloats.Tensor(t.Name, type, t.Dims.ToArray(), ModelIO.TensorFloats(model, t));
        converted.DocString = t.DocString;
        return converted;
    }
}
