using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>
/// Seeded random inputs that honour each graph input's declared element type and shape (as ONNX Runtime reports
/// them, so initializers are excluded and models verified by path work too). float/double: uniform [-1, 1]
/// (float16/bfloat16: the same, rounded to the type);
/// integers: uniform {0..3} (small and non-negative, so index-like inputs stay in range); bool: fair coin.
/// </summary>
public static class InputGenerator
{
    /// <summary>2^25 elements (128 MiB of float32; a 4K RGB image fits): a hostile declared shape must not exhaust memory (found by tools/fuzz).</summary>
    public const long MaxRandomInputElements = 1L << 25;

    public static IReadOnlyList<TensorValue> Generate(InferenceSession session, IReadOnlyDictionary<string, long[]> shapes, int seed)
        => Generate(session, shapes, seed, null);

    /// <summary>As above; what the symbolic-dims policy assumed (a batch taken as 1) is added to <paramref name="assumptions"/>.</summary>
    public static IReadOnlyList<TensorValue> Generate(InferenceSession session, IReadOnlyDictionary<string, long[]> shapes, int seed, List<string>? assumptions)
    {
        var names = session.InputNames;
        foreach (var given in shapes.Keys)
            if (!names.Contains(given))
                throw new VerificationInputException(
                    $"--shape names '{given}', which is not a graph input (inputs: {string.Join(", ", names)})");
        var rng = new Random(seed);
        var values = new List<TensorValue>(names.Count);
        foreach (var name in names)
        {
            var meta = session.InputMetadata[name];
            if (!meta.IsTensor)
                throw new VerificationInputException($"input '{name}' is a {meta.OnnxValueType}, not a tensor: random inputs support tensors only (use --inputs)");
            var resolved = Shapes.SymbolicDims.Resolve(name, meta.Dimensions.Select(d => (long)d).ToArray(), meta.SymbolicDimensions, shapes.GetValueOrDefault(name));
            var dims = resolved.Dims;
            if (resolved.Assumption is not null) assumptions?.Add(resolved.Assumption);
            var type = (DataType)(int)meta.ElementDataType;
            long count = OnnxDeconv.GraphRewrite.IO.Tensors.ElementCount(dims);
            if (count > MaxRandomInputElements)
                throw new VerificationInputException($"input '{name}': shape [{string.Join(",", dims)}] has {count} elements, over the limit of {MaxRandomInputElements} for a random verification input (the model's own tensors grow from it); verify on files with --inputs");
            values.Add(new TensorValue(name, type, dims, Fill(name, type, (int)count, rng)));
        }
        return values;
    }

    /// <summary>Declared dims resolved by the one symbolic-dims policy (<see cref="Shapes.SymbolicDims"/>).</summary>
    public static long[] ResolveShape(string name, int[] declared, string[] symbolic, long[]? given) =>
        Shapes.SymbolicDims.Resolve(name, declared.Select(d => (long)d).ToArray(), symbolic, given).Dims;

    private static Array Fill(string name, DataType type, int n, Random rng)
    {
        switch (type)
        {
            case DataType.Float: { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1); return a; }
            case DataType.Float16 or DataType.Bfloat16:
            {
                // The same uniform [-1, 1] draw, rounded to the type: every value is exactly representable, so both
                // models see identical inputs and a reference can widen them exactly.
                var a = new float[n];
                for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
                return TensorValue.Rounded(name, type, [n], a).Data;
            }
            case DataType.Double: { var a = new double[n]; for (int i = 0; i < n; i++) a[i] = rng.NextDouble() * 2 - 1; return a; }
            case DataType.Int64: { var a = new long[n]; for (int i = 0; i < n; i++) a[i] = rng.Next(4); return a; }
            case DataType.Int32: { var a = new int[n]; for (int i = 0; i < n; i++) a[i] = rng.Next(4); return a; }
            case DataType.Uint8: { var a = new byte[n]; for (int i = 0; i < n; i++) a[i] = (byte)rng.Next(4); return a; }
            case DataType.Int8: { var a = new sbyte[n]; for (int i = 0; i < n; i++) a[i] = (sbyte)rng.Next(4); return a; }
            case DataType.Bool: { var a = new bool[n]; for (int i = 0; i < n; i++) a[i] = rng.Next(2) == 1; return a; }
            default: throw new VerificationInputException($"input '{name}': element type {type} is not supported for random inputs (use --inputs)");
        }
    }
}
