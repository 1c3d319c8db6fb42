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

    // 16-bit float outputs cannot be closer than their own rounding. Two computations that agree in float32 still
    // round to values up to one step apart on each side (rtol: two steps, 2^-9*|b| for float16, since one step of a
    // normal b is at most 2^-10*|b|). And every intermediate activation of a half model is rounded to the type, so a
    // one-step difference there (one step of the activation's own magnitude) flows into every later layer: atol is four
    // steps at magnitude 1 (2^-8 for float16), for activations of unit scale. Measured on tests/models/fp16_decoder.onnx
    // (3 layers after the rewritten ConvTranspose): max |a-b| 1.3e-3 over seeds 0-7, every target.
    public const double Float16Atol = 1.0 / 256;
    public const double Float16Rtol = 1.0 / 512;
    public const double BFloat16Atol = 1.0 / 32;
    public const double BFloat16Rtol = 1.0 / 64;

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
        DataType.Float16 => $"float16 outputs within {ForType(type)} (at least two float16 steps at |b|, 2^-9*|b|, plus four at magnitude 1, 2^-8: each side rounds, and rounded activations carry their step into later layers)",
        DataType.Bfloat16 => $"bfloat16 outputs within {ForType(type)} (at least two bfloat16 steps at |b|, 2^-6*|b|, plus four at magnitude 1, 2^-5)",
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
public sealed class VerificationInputException(string message, Exception? inner = null) : InvalidInputException(message, inner);
