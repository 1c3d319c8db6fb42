namespace OnnxDeconv.Tests;

/// <summary>The project's float32 comparison: |a - b| &lt;= atol + rtol*|b| with atol 1e-5, rtol 1e-4 (b is the expected value).</summary>
internal static class Close
{
    public const double Atol = 1e-5;
    public const double Rtol = 1e-4;

    /// <summary>Null when every element is within tolerance (and the lengths match), otherwise a description of the worst element.</summary>
    public static string? Mismatch(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        if (actual.Length != expected.Length) return $"length {actual.Length} != expected {expected.Length}";
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], b = expected[i];
            double excess = Math.Abs(a - b) - (Atol + Rtol * Math.Abs(b));
            // NaN anywhere is a mismatch too.
            if (double.IsNaN(excess) || excess > worstExcess) { worst = i; worstExcess = double.IsNaN(excess) ? double.PositiveInfinity : excess; }
        }
        return worst < 0 ? null : $"element {worst}: {actual[worst]} vs expected {expected[worst]} (|a-b|={Math.Abs(actual[worst] - expected[worst])})";
    }
}
