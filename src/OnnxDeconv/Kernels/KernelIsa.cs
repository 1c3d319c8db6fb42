using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OnnxDeconv.Kernels;

/// <summary>Instruction-set variant of <see cref="DeconvKernel"/>; every variant computes the same function.</summary>
public enum KernelIsa { Scalar = 0, Vector = 1, Avx2 = 2, Avx512 = 3 }

/// <summary>
/// Picks the ISA variant once at start-up: the widest the hardware supports, unless the environment variable
/// <see cref="EnvironmentVariable"/> (avx512 | avx2 | vector | scalar) asks for another one.
/// </summary>
public static class KernelIsaSelector
{
    public const string EnvironmentVariable = "ONNXDECONV_ISA";

    // Declared first: static initialisers run in textual order and Detect reads it.
    /// <summary>Variants this machine can run, widest first.</summary>
    public static IReadOnlyList<KernelIsa> Supported { get; } =
        new[] { KernelIsa.Avx512, KernelIsa.Avx2, KernelIsa.Vector, KernelIsa.Scalar }.Where(IsSupported).ToArray();

    private static KernelIsa s_active = Detect(Environment.GetEnvironmentVariable(EnvironmentVariable), out s_note);
    private static string? s_note;

    /// <summary>The variant <see cref="DeconvKernel.Run"/> uses.</summary>
    public static KernelIsa Active => s_active;

    /// <summary>Why the environment variable was ignored (unknown or unsupported value), else null.</summary>
    public static string? Note => s_note;

    public static bool IsSupported(KernelIsa isa) => isa switch
    {
        KernelIsa.Avx512 => Avx512F.IsSupported && Vector512.IsHardwareAccelerated,
        KernelIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        KernelIsa.Vector => Vector.IsHardwareAccelerated,
        KernelIsa.Scalar => true,
        _ => false,
    };

    /// <summary>Test/benchmark hook: forces a variant process-wide.</summary>
    internal static void SetActive(KernelIsa isa)
    {
        if (!IsSupported(isa)) throw new PlatformNotSupportedException($"ISA variant {isa} is not supported on this machine");
        s_active = isa;
    }

    internal static KernelIsa Detect(string? requested, out string? note)
    {
        note = null;
        KernelIsa best = Supported[0];
        if (string.IsNullOrWhiteSpace(requested)) return best;
        KernelIsa? wanted = requested.Trim().ToLowerInvariant() switch
        {
            "avx512" => KernelIsa.Avx512,
            "avx2" => KernelIsa.Avx2,
            "vector" => KernelIsa.Vector,
            "scalar" => KernelIsa.Scalar,
            _ => null,
        };
        if (wanted is null)
        {
            note = $"{EnvironmentVariable}='{requested}' is not one of avx512, avx2, vector, scalar; using {best}";
            return best;
        }
        if (!IsSupported(wanted.Value))
        {
            note = $"{EnvironmentVariable}={requested}: not supported on this machine; using {best}";
            return best;
        }
        return wanted.Value;
    }
}
