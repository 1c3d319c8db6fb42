using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.GraphRewrite.Shapes;

/// <summary>
/// A ConvTranspose with output_shape implies pads that depend on its input size. When that size is not declared but
/// known from the resolved input shapes (--shape, the batch rule), the site is lowered for that size only; the written
/// model then declares its graph inputs with those sizes, so ONNX Runtime refuses another size with a clear error
/// instead of computing a wrong result. The batch dim stays as declared: the pads do not depend on it.
/// </summary>
public static class SpecialisedSites
{
    /// <summary>The graph inputs' shapes by the one policy (docs/shapes.md); inputs it cannot resolve are left out.</summary>
    public static IReadOnlyDictionary<string, long[]> ResolvedInputs(ModelProto model, IReadOnlyDictionary<string, long[]>? shapes)
    {
        try { return ShapeProbe.ResolveInputs(model, shapes).Shapes; }
        catch (ShapeProbeException) { return new Dictionary<string, long[]>(StringComparer.Ordinal); } // e.g. a non-tensor input
    }

    /// <summary>ConvTransposes whose output_shape pads depend on an input size the model does not declare.</summary>
    public static IReadOnlyList<NodeProto> Find(ModelProto model)
    {
        var index = new GraphIndex(model);
        return model.Graph.Node.Where(n => n.OpType == Ops.ConvTranspose.OpType && Ops.IsDefaultDomain(n.Domain) && n.Input.Count > 0
                && Attributes.GetInts(n, Ops.ConvTranspose.OutputShape) is not null
                && !(index.Shape(n.Input[0]) is { } s && s.Length > 2 && s.Skip(2).All(d => d > 0)))
            .ToList();
    }

    /// <summary>
    /// Declares every symbolic non-batch dim of the graph inputs with its resolved value; returns what changed in words
    /// ("graph input 'x' now declared [N,3,16,16]"), or null when nothing did.
    /// </summary>
    public static string? Pin(ModelProto model, IReadOnlyDictionary<string, long[]> resolved)
    {
        var changed = new List<string>();
        foreach (var input in model.Graph.Input)
        {
            var shape = input.Type?.TensorType?.Shape;
            if (shape is null || !resolved.TryGetValue(input.Name, out var dims) || dims.Length != shape.Dim.Count) continue;
            bool any = false;
            for (int i = 1; i < dims.Length; i++)
            {
                var d = shape.Dim[i];
                if (d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && d.DimValue >= 0) continue;
                shape.Dim[i] = new TensorShapeProto.Types.Dimension { DimValue = dims[i] };
                any = true;
            }
            if (!any) continue;
            var declared = SymbolicDims.Declared(input)!.Value;
            changed.Add($"graph input '{input.Name}' now declared {SymbolicDims.Format(declared.Dims, declared.Names)}");
        }
        return changed.Count == 0 ? null : "the model is specialised to that size: " + string.Join(", ", changed);
    }
}
