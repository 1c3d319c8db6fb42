using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Plugin;

/// <summary>
/// The custom op <c>ai.onnxdeconv::TransposedConv</c> version 1 (documented in docs/custom-op.md).
/// Inputs: X (T [N, Cin, spatial...]), W (T, 1-D, packed by <see cref="DeconvKernel.PackWeights"/>),
/// optional B (T [Cout]). Output: Y (T [N, Cout, spatial...]). T is float or float16, the same for all four (one
/// registered kernel per type; float16 computes in float32, converted at the op boundary, Y rounded once).
/// The attributes carry the fully resolved plan.
/// </summary>
public static class TransposedConvSchema
{
    public const string Domain = "ai.onnxdeconv";
    public const string OpType = "TransposedConv";
    public const int Version = 1;

    public const string KernelShape = "kernel_shape";
    public const string Strides = "strides";
    public const string Dilations = "dilations";
    /// <summary>[begins..., ends...]; an end pad may be negative (output extended, as ConvTranspose's output_shape allows).</summary>
    public const string Pads = "pads";
    public const string OutputPadding = "output_padding";
    public const string Group = "group";
    public const string InChannels = "in_channels";
    public const string OutChannels = "out_channels";
    /// <summary>"" (none), "Relu", "LeakyRelu", "Clip", "Sigmoid" or "Tanh".</summary>
    public const string Activation = "activation";
    public const string Alpha = "alpha";
    public const string ClipMin = "clip_min";
    public const string ClipMax = "clip_max";
    /// <summary>The <see cref="PackingFormat"/> the weights were packed with; a different value is refused.</summary>
    public const string PackingFormatAttribute = "packing_format";
    /// <summary>Optional: the spatial output size the original node asked for (output_shape); checked at run time.</summary>
    public const string OutputShape = "output_shape";

    public const int InputX = 0, InputW = 1, InputB = 2;

    /// <summary>
    /// Identifies <see cref="DeconvKernel"/>'s packed weight layout: a hash of what PackWeights makes of index-coded
    /// weights (w[i] = i) over probe geometries covering ranks 1-3, groups, strides, dilations and channel blocks. Any change of the
    /// layout (including an ISA-dependent one) changes the value, so a model packed for another layout is refused
    /// instead of computing garbage.
    /// </summary>
    public static int PackingFormat => PackingFormatLazy.Value;

    private static readonly Lazy<int> PackingFormatLazy = new(ComputePackingFormat);

    /// <summary>
    /// The fingerprint's probe geometries. They must reach every output-channel block width the packing can choose
    /// (<see cref="DeconvPlan.BlockFor"/>: 12 for most layers, 48 for wide multi-tap ones; tested), else a change of one
    /// width's layout would go unnoticed and old models would compute garbage.
    /// </summary>
    internal static ConvTransposeGeometry[] FingerprintProbes() =>
    [
        ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2] }, [1, 4, 5], [4, 3, 4]),
        ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 3], Dilations = [2, 1], Group = 2 }, [1, 6, 4, 3], [6, 2, 3, 2]),
        ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, [1, 8, 3, 3], [8, 5, 4, 4]),
        ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 2], Group = 4 }, [1, 4, 3, 3], [4, 1, 3, 3]),
        ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 1, 2] }, [1, 2, 2, 3, 2], [2, 3, 2, 3, 2]),
        // Wide output-channel blocks (100 channels: two 48-blocks and a 4-channel tail).
        ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 1], Pads = [1, 0, 1, 0] }, [1, 2, 2, 2], [2, 100, 4, 2]),
    ];

    private static int ComputePackingFormat()
    {
        uint h = 2166136261;
        foreach (var g in FingerprintProbes())
        {
            int n = checked((int)g.WeightShape.Aggregate(1L, (p, d) => p * d));
            var onnx = new float[n];
            for (int i = 0; i < n; i++) onnx[i] = i + 1;
            var packed = new float[DeconvKernel.PackedWeightLength(g)];
            DeconvKernel.PackWeights(g, onnx, packed);
            h = Mix(h, (uint)packed.Length);
            foreach (float v in packed) h = Mix(h, BitConverter.SingleToUInt32Bits(v));
        }
        // Keep it positive so it reads well in a model dump.
        return (int)(h & 0x7FFFFFFF);
    }

    private static uint Mix(uint h, uint v)
    {
        for (int i = 0; i < 4; i++) { h ^= (v >> (8 * i)) & 0xFF; h *= 16777619; }
        return h;
    }

    public static string ActivationName(Activation a) => a switch
    {
        Kernels.Activation.None => "",
        _ => a.ToString(),
    };

    public static Activation ParseActivation(string? s) => s switch
    {
        null or "" => Kernels.Activation.None,
        "Relu" => Kernels.Activation.Relu,
        "LeakyRelu" => Kernels.Activation.LeakyRelu,
        "Clip" => Kernels.Activation.Clip,
        "Sigmoid" => Kernels.Activation.Sigmoid,
        "Tanh" => Kernels.Activation.Tanh,
        _ => throw new TransposedConvException(Activation, $"activation must be one of \"\", Relu, LeakyRelu, Clip, Sigmoid, Tanh; got '{s}'"),
    };
}

/// <summary>Invalid TransposedConv attributes or inputs; <see cref="Subject"/> names the attribute or input.</summary>
public sealed class TransposedConvException(string subject, string message) : InvalidInputException(message)
{
    public string Subject { get; } = subject;
}
