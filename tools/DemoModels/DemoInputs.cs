using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.DemoModels;

/// <summary>Deterministic sample inputs for a model with static float (or float16/bfloat16) inputs (demo models, tests, benchmarks).</summary>
public static class DemoInputs
{
    /// <summary>One tensor per graph input that is not an initializer: uniform in [-sqrt 3, sqrt 3) (unit variance).</summary>
    public static IReadOnlyList<TensorValue> For(ModelProto model, ulong seed = DemoModelCatalog.Seed)
    {
        var rng = new SplitMix64(seed);
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var result = new List<TensorValue>();
        foreach (var input in model.Graph.Input)
        {
            if (initializers.Contains(input.Name)) continue;
            var tt = input.Type?.TensorType;
            if (tt is null || tt.ElemType is not ((int)DataType.Float or (int)DataType.Float16 or (int)DataType.Bfloat16))
                throw new InvalidDataException($"input '{input.Name}': only FLOAT, FLOAT16 and BFLOAT16 tensor inputs get sample data");
            if (tt.Shape is null || tt.Shape.Dim.Any(d => !d.HasDimValue))
                throw new InvalidDataException($"input '{input.Name}': shape is not fully static");
            long[] dims = tt.Shape.Dim.Select(d => d.DimValue).ToArray();
            long count = dims.Aggregate(1L, (p, d) => checked(p * d));
            var values = rng.Uniform(count, MathF.Sqrt(3f));
            // Half-precision inputs: the same draw rounded to the type (nearest even).
            result.Add(tt.ElemType == (int)DataType.Float
                ? TensorValue.Float(input.Name, dims, values)
                : TensorValue.Rounded(input.Name, (DataType)tt.ElemType, dims, values));
        }
        return result;
    }
}
