using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using static OnnxDeconv.Tests.Kernels.KernelCheck;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>
/// The one-pixel-input GEMM path (a generator's z layer: every output pixel sees at most one tap) against the scalar
/// reference, on every ISA variant, with tails: batches above and below the micro-kernel's image rows, column counts
/// (taps x channel block) not a multiple of a vector, wide and narrow channel blocks, input-channel slices, pads and
/// output_padding that leave bias-only pixels, a dilated kernel, 1D/3D and groups. Tolerance |a-b| &lt;= 1e-5 + 1e-4*|b|
/// (float32, b = reference).
/// </summary>
public sealed class OnePixelKernelTests
{
    public static TheoryData<KernelIsa> Variants() => Isas();

    private static IEnumerable<ConvTransposeGeometry> Cases() =>
    [
        // DCGAN-style z layer, wide packed blocks (>= 96 channels, 16 taps): batch 1 and batch 9 (8 rows + 1).
        Geo(1, 20, 100, 1, [1, 1], [4, 4]),
        Geo(9, 13, 97, 1, [1, 1], [4, 4]),
        // Narrow blocks, 3 channels x 9 taps = 27 columns: a scalar column tail; batch 3.
        Geo(3, 5, 7, 1, [1, 1], [3, 3]),
        // Stride, pads and output_padding: taps outside the output and pixels no tap writes (bias only).
        Geo(2, 6, 10, 1, [1, 1], [3, 4], strides: [2, 3], pads: [1, 0, 0, 1], outputPadding: [1, 2]),
        Geo(1, 8, 12, 1, [1, 1], [3, 3], strides: [1, 1], dilations: [2, 2]),
        // 1D, 3D and groups.
        Geo(5, 33, 40, 1, [1], [7], strides: [2]),
        Geo(2, 4, 6, 1, [1, 1, 1], [2, 3, 2]),
        Geo(2, 12, 18, 3, [1, 1], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
    ];

    [Theory]
    [MemberData(nameof(Variants))]
    public void OnePixelInput_MatchesReference_OnEveryVariantAndTail(KernelIsa isa)
    {
        foreach (var g in Cases())
        {
            Assert.NotNull(DeconvKernel.GetPlan(g, isa, null).OnePixel); // the cases exercise this path
            foreach (var ep in new[] { Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.Tanh) })
            {
                Assert.Null(Compare(g, isa, ep, null, null, seed: 5));
                Assert.Null(Compare(g, isa, ep, null, new ParallelForDouble(2), seed: 6, withBias: false));
            }
        }
    }

    [Fact]
    public void LargerInputsAndFewInputChannels_TakeOtherPaths()
    {
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 20, 100, 1, [2, 1], [4, 4]), KernelIsa.Scalar, null).OnePixel);
        // Depthwise on one pixel: one input channel per group, nothing to contract.
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 8, 8, 8, [1, 1], [4, 4]), KernelIsa.Scalar, null).OnePixel);
    }
}
