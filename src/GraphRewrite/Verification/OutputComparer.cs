using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>How one output of the model under test compares with the expected (reference) output.</summary>
public sealed record OutputComparison
{
    public required string Name { get; init; }
    public required bool Passed { get; init; }
    public DataType? ExpectedType { get; init; }
    public DataType? ActualType { get; init; }
    public long[]? ExpectedDims { get; init; }
    public long[]? ActualDims { get; init; }
    public long Elements { get; init; }
    /// <summary>Elements outside the tolerance (NaN counts as outside).</summary>
    public long Mismatches { get; init; }
    public double MaxAbsError { get; init; }
    /// <summary>Max of |a-b|/|b| over elements with b != 0 (relative error is undefined at b == 0).</summary>
    public double MaxRelError { get; init; }
    /// <summary>Index of the element that uses the most of its tolerance (the worst one); null when no element was compared.</summary>
    public long[]? WorstIndex { get; init; }
    public double? WorstExpected { get; init; }
    public double? WorstActual { get; init; }
    /// <summary>The tolerance this output was held to (per element type, see <see cref="Tolerance.ForType"/>); null when nothing was compared.</summary>
    public Tolerance? Tolerance { get; init; }
    /// <summary>Why the output fails beyond plain numeric error (missing, shape or type mismatch, NaN), else null.</summary>
    public string? Problem { get; init; }
    /// <summary>For a quantized output (<see cref="QuantizedOutputs"/>): the rule it was held to, in words; else null.</summary>
    public string? QuantizedRule { get; init; }
    /// <summary>For a quantized output: elements exactly one quantization step off (allowed up to 1%).</summary>
    public long? StepsOff { get; init; }

    public string Describe()
    {
        if (Problem is not null && WorstIndex is null) return Problem;
        var text = $"max abs {MaxAbsError:G4}, max rel {MaxRelError:G4}";
        if (!Passed && WorstIndex is not null)
            text += $", {Mismatches}/{Elements} outside tolerance, worst at [{string.Join(",", WorstIndex)}]: got {WorstActual:G7}, expected {WorstExpected:G7}";
        if (Problem is not null) text += $" ({Problem})";
        return text;
    }
}

/// <summary>
/// Compares tensors element-wise with a <see cref="Tolerance"/> (widened for float16/bfloat16 outputs, see
/// <see cref="Tolerance.ForType"/>); shape, type and NaN mismatches fail.
/// </summary>
public static class OutputComparer
{
    public static OutputComparison Compare(string name, TensorValue? expected, TensorValue? actual, Tolerance tolerance)
    {
        if (expected is null || actual is null)
            return new OutputComparison
            {
                Name = name, Passed = false,
                ExpectedType = expected?.ElementType, ActualType = actual?.ElementType,
                ExpectedDims = expected?.Dims, ActualDims = actual?.Dims,
                Problem = expected is null ? "no expected value for this output" : "output missing from the model under test",
            };
        if (expected.ElementType != actual.ElementType)
            return new OutputComparison
            {
                Name = name, Passed = false, ExpectedType = expected.ElementType, ActualType = actual.ElementType,
                ExpectedDims = expected.Dims, ActualDims = actual.Dims,
                Problem = $"element type mismatch: expected {expected.ElementType}, got {actual.ElementType}",
            };
        if (!expected.Dims.SequenceEqual(actual.Dims))
            return new OutputComparison
            {
                Name = name, Passed = false, ExpectedType = expected.ElementType, ActualType = actual.ElementType,
                ExpectedDims = expected.Dims, ActualDims = actual.Dims,
                Problem = $"shape mismatch: expected [{string.Join(",", expected.Dims)}], got [{string.Join(",", actual.Dims)}]",
            };

        tolerance = tolerance.ForType(expected.ElementType);
        var e = Reader(expected);
        var a = Reader(actual);
        long n = expected.Data.Length;
        long mismatches = 0, nans = 0, worst = -1;
        double maxAbs = 0, maxRel = 0, worstScore = -1;
        for (long i = 0; i < n; i++)
        {
            double b = e(i), x = a(i);
            double score;
            if (x == b) score = 0; // also equal infinities
            else if (double.IsNaN(x) || double.IsNaN(b)) { score = double.PositiveInfinity; nans++; }
            else
            {
                double abs = Math.Abs(x - b);
                if (abs > maxAbs || double.IsNaN(maxAbs)) maxAbs = abs;
                if (b != 0) maxRel = Math.Max(maxRel, abs / Math.Abs(b));
                score = abs / tolerance.Allowed(b);
                if (double.IsNaN(score)) score = double.PositiveInfinity; // inf - inf
            }
            if (!tolerance.Close(x, b)) mismatches++;
            if (score > worstScore) { worstScore = score; worst = i; }
        }
        return new OutputComparison
        {
            Name = name,
            Passed = mismatches == 0,
            ExpectedType = expected.ElementType, ActualType = actual.ElementType,
            ExpectedDims = expected.Dims, ActualDims = actual.Dims,
            Elements = n,
            Tolerance = tolerance,
            Mismatches = mismatches,
            MaxAbsError = nans > 0 ? double.NaN : maxAbs,
            MaxRelError = nans > 0 ? double.NaN : maxRel,
            WorstIndex = worst >= 0 ? Unravel(worst, expected.Dims) : null,
            WorstExpected = worst >= 0 ? e(worst) : null,
            WorstActual = worst >= 0 ? a(worst) : null,
            Problem = nans > 0 ? $"{nans} NaN value(s)" : null,
        };
    }

    public static long[] Unravel(long flat, long[] dims)
    {
        var idx = new long[dims.Length];
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            if (dims[d] == 0) return idx;
            idx[d] = flat % dims[d];
            flat /= dims[d];
        }
        return idx;
    }

    private static Func<long, double> Reader(TensorValue t) => t.Data switch
    {
        float[] f => i => f[i],
        double[] d => i => d[i],
        long[] l => i => l[i],
        int[] v => i => v[i],
        bool[] b => i => b[i] ? 1 : 0,
        byte[] u => i => u[i],
        sbyte[] s => i => s[i],
        Microsoft.ML.OnnxRuntime.Float16[] h => i => IO.HalfFloats.Float16ToFloat(h[i].value),
        Microsoft.ML.OnnxRuntime.BFloat16[] bf => i => IO.HalfFloats.BFloat16ToFloat(bf[i].value),
        _ => throw new NotSupportedException($"tensor '{t.Name}': {t.ElementType} cannot be compared"),
    };
}
