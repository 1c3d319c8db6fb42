using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>
/// Element-wise closeness |a - b| &lt;= Atol + Rtol * |b| (b = expected). Defaults are the project's float32 tolerances.
/// </summary>
public sealed record Tolerance(double Atol = Tolerance.DefaultAtol, double Rtol = Tolerance.DefaultRtol)
{
    public const double DefaultAtol = 1e-5;
    public const double DefaultRtol = 1e-4;

    public static Tolerance Default { get; } = new();

    // 16-bit float outputs cannot be closer than their own rounding: two computations that agree in float32 to 1e-6
    // can still round to neighbouring float16 values. One step (ulp) of a normal float16 b is at most 2^-10*|b|
    // (bfloat16: 2^-7*|b|), so rtol is one step; atol covers values near zero from cancellation, where rounding of
    // rewritten (summed or folded) weights to the model's type shows as an absolute error.
    public const double Float16Atol = 1e-3;
    public const double Float16Rtol = 1.0 / 1024;
    public const double BFloat16Atol = 1e-2;
    public const double BFloat16Rtol = 1.0 / 128;

    /// <summary>
    /// The tolerance applied to outputs of <paramref name="type"/>: this one for float32 and every other type; for
    /// FLOAT16 and BFLOAT16 this one widened to at least one step of the type (<see cref="Float16Atol"/>, ...).
    /// </summary>
    public Tolerance ForType(DataType type) => type switch
    {
        DataType.Float16 => new Tolerance(Math.Max(Atol, Float16Atol), Math.Max(Rtol, Float16Rtol)),
        DataType.Bfloat16 => new Tolerance(Math.Max(Atol, BFloat16Atol), Math.Max(Rtol, BFloat16Rtol)),
        _ => this,
    };

    /// <summary>The rule for a 16-bit float type in words (for reports), or null for other types.</summary>
    public string? RuleFor(DataType type) => type switch
    {
        DataType.Float16 => $"float16 outputs within {ForType(type)} (at least one float16 step, 2^-10*|b|, and atol {Fmt(Float16Atol)})",
        DataType.Bfloat16 => $"bfloat16 outputs within {ForType(type)} (at least one bfloat16 step, 2^-7*|b|, and atol {Fmt(BFloat16Atol)})",
        _ => null,
    };

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
