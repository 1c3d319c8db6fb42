using System.Globalization;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.Shapes;

/// <summary>A graph input's shape as decided by <see cref="SymbolicDims"/>, with the assumption made (null when none).</summary>
public sealed record ResolvedShape(long[] Dims, string? Assumption);

/// <summary>
/// The one policy for symbolic dims, for every command (docs/shapes.md):
/// 1. a dim given with --shape is used (its rank and the model's fixed dims must agree);
/// 2. a fixed (declared) dim is used;
/// 3. a symbolic leading (batch) dim of a rank >= 2 input is taken as 1, and the output says so;
/// 4. any other symbolic dim has no value: the command that needs it stops (exit 3) naming the input and an example --shape.
/// </summary>
public static class SymbolicDims
{
    /// <summary>Declared dims of a graph input: -1 where symbolic or unknown; null when no shape is declared.</summary>
    public static (long[] Dims, string[] Names)? Declared(ValueInfoProto input)
    {
        var shape = input.Type?.TensorType?.Shape;
        if (shape is null) return null;
        var dims = new long[shape.Dim.Count];
        var names = new string[dims.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            var d = shape.Dim[i];
            bool fixedDim = d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && d.DimValue >= 0;
            dims[i] = fixedDim ? d.DimValue : -1;
            names[i] = d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : "";
        }
        return (dims, names);
    }

    /// <summary>The policy for one input; null (with <paramref name="problem"/>) when a non-batch dim has no value.</summary>
    public static ResolvedShape? TryResolve(string name, long[] declared, string[]? symbolic, long[]? given, out string? problem)
    {
        problem = null;
        string Text() => Format(declared, symbolic);
        if (given is not null)
        {
            if (given.Length != declared.Length)
                throw new VerificationInputException($"--shape {name}: gives {given.Length} dims, the input has rank {declared.Length} {Text()}");
            for (int i = 0; i < declared.Length; i++)
                if (declared[i] >= 0 && declared[i] != given[i])
                    throw new VerificationInputException($"--shape {name}: dim {i} is fixed to {declared[i]} in the model, --shape gives {given[i]} (declared {Text()})");
            return new ResolvedShape(given, null);
        }
        var dims = new long[declared.Length];
        string? assumption = null;
        for (int i = 0; i < declared.Length; i++)
        {
            if (declared[i] >= 0) { dims[i] = declared[i]; continue; }
            if (i == 0 && declared.Length >= 2)
            {
                dims[0] = 1;
                assumption = $"input '{name}': batch dimension {SymText(symbolic, 0)} taken as 1 (give --shape {name}={Example(declared)} to choose)";
                continue;
            }
            problem = $"input '{name}' has symbolic dim {i} ({SymText(symbolic, i)}) in shape {Text()}: give it with --shape {name}={Example(declared)}";
            return null;
        }
        return new ResolvedShape(dims, assumption);
    }

    /// <summary>The policy for one input; stops (exit 3) with the input and an example --shape when a dim has no value.</summary>
    public static ResolvedShape Resolve(string name, long[] declared, string[]? symbolic, long[]? given) =>
        TryResolve(name, declared, symbolic, given, out var problem) ?? throw new VerificationInputException(problem!);

    /// <summary>"[N,3,H,W]".</summary>
    public static string Format(long[] declared, string[]? symbolic) =>
        "[" + string.Join(",", declared.Select((d, i) => d >= 0 ? d.ToString(CultureInfo.InvariantCulture) : Sym(symbolic, i))) + "]";

    /// <summary>An example --shape value: the fixed dims, 1 for the batch, 64 for other symbolic dims.</summary>
    public static string Example(long[] declared) =>
        string.Join(",", declared.Select((d, i) => d >= 0 ? d : (i == 0 ? 1 : 64)));

    private static string Sym(string[]? symbolic, int i) =>
        symbolic is not null && i < symbolic.Length && !string.IsNullOrEmpty(symbolic[i]) ? symbolic[i] : "?";

    private static string SymText(string[]? symbolic, int i) =>
        symbolic is not null && i < symbolic.Length && !string.IsNullOrEmpty(symbolic[i]) ? $"'{symbolic[i]}'" : "unknown";
}
