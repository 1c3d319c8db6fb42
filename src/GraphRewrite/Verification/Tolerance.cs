namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>
/// Element-wise closeness |a - b| &lt;= Atol + Rtol * |b| (b = expected). Defaults are the project's float32 tolerances.
/// </summary>
public sealed record Tolerance(double Atol = Tolerance.DefaultAtol, double Rtol = Tolerance.DefaultRtol)
{
    public const double DefaultAtol = 1e-5;
    public const double DefaultRtol = 1e-4;

    public static Tolerance Default { get; } = new();

    public double Allowed(double expected) => Atol + Rtol * Math.Abs(expected);

    /// <summary>Equal values (including equal infinities) pass; NaN on either side fails, as do unequal infinities.</summary>
    public bool Close(double actual, double expected)
    {
        if (actual == expected) return true;
        if (!double.IsFinite(actual) || !double.IsFinite(expected)) return false; // else inf <= atol + rtol*inf would pass
        return Math.Abs(actual - expected) <= Allowed(expected);
    }

    public override string ToString() => $"atol {Fmt(Atol)}, rtol {Fmt(Rtol)}";

    private static string Fmt(double v) => v.ToString("G3", System.Globalization.CultureInfo.InvariantCulture).ToLowerInvariant();
}

/// <summary>A user-supplied input (file, --shape, tolerance) is unusable; the message names the file or input. CLI exit 3.</summary>
public sealed class VerificationInputException(string message, Exception? inner = null) : Exception(message, inner);
