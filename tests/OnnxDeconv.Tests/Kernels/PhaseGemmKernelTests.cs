using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using static OnnxDeconv.Tests.Kernels.KernelCheck;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>
/// The phase-GEMM path (one tap per phase on 3D or with stride above the kernel; one output channel) against the scalar
/// reference, on every ISA variant, with tails: output channels not a multiple of the micro-kernel's rows, pixel counts
/// not a multiple of the block, several input-channel slices, pads, output_padding, batch, groups. Tolerance
/// |a-b| &lt;= 1e-5 + 1e-4*|b| (float32, b = reference).
/// </summary>
public sealed class PhaseGemmKernelTests
{
    public static TheoryData<KernelIsa> Variants() => Isas();

    private static IEnumerable<ConvTransposeGeometry> Cases() =>
    [
        // 3D k2 s2 on short rows, one tap per phase: 8 phases sharing one shift; 13 channels = 12 rows + a tail.
        Geo(1, 16, 13, 1, [3, 4, 3], [2, 2, 2], strides: [2, 2, 2]),
        Geo(2, 20, 30, 1, [4, 3, 3], [2, 2, 2], strides: [2, 2, 2], pads: [1, 0, 0, 1, 0, 1]),
        // Stride above the kernel: empty (bias-only) phases and one-tap phases in one stack.
        Geo(1, 24, 64, 1, [9, 7], [2, 2], strides: [3, 3], outputPadding: [1, 2]),
        Geo(1, 5, 7, 1, [11], [1], strides: [4], pads: [1, 0]),
        // Output a multiple of the stride on the last axis: row groups of s phases stored interleaved; 13 channels (a tail),
        // a pixel count that is not a multiple of the block, and a batch of 2.
        Geo(2, 24, 13, 1, [5, 6], [2, 2], strides: [3, 3], outputPadding: [1, 1]),
        // Grouped one-tap 2D with stride above the kernel.
        Geo(2, 8, 12, 2, [6, 5], [2, 3], strides: [3, 4]),
        // One output channel, 1D: the phases share the panel (ISTFT-like k = 4 s; k9 s2/s3 and k16 s8 with pads).
        Geo(1, 37, 1, 1, [9], [16], strides: [4]),
        Geo(1, 300, 1, 1, [7], [12], strides: [3]), // several input-channel slices
        Geo(1, 6, 1, 1, [130], [9], strides: [2], pads: [4, 4], outputPadding: [1]), // several pixel blocks, direct interior
        Geo(2, 9, 1, 1, [70], [9], strides: [3], pads: [4, 4], outputPadding: [2]),
        Geo(1, 4, 1, 1, [65], [16], strides: [8], pads: [4, 4]),
        // Grids of different sizes per phase (output not a multiple of the stride): several stacks.
        Geo(1, 7, 1, 1, [10], [5], strides: [3], pads: [1, 2]),
    ];

    [Theory]
    [MemberData(nameof(Variants))]
    public void PhaseGemmPath_MatchesReference_OnEveryVariantAndTail(KernelIsa isa)
    {
        foreach (var g in Cases())
        {
            Assert.NotNull(DeconvKernel.GetPlan(g, isa, null).Gemm); // the cases exercise this path
            foreach (var ep in new[] { Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.Tanh) })
            {
                Assert.Null(Compare(g, isa, ep, null, null, seed: 3));
                Assert.Null(Compare(g, isa, ep, null, new ParallelForDouble(2), seed: 4, withBias: false));
            }
        }
    }

    [Fact]
    public void OutputAMultipleOfTheStride_GroupsThePhasesIntoInterleavedRows()
    {
        var plan = DeconvKernel.GetPlan(Geo(2, 24, 13, 1, [5, 6], [2, 2], strides: [3, 3], outputPadding: [1, 1]), KernelIsa.Scalar, null);
        Assert.All(plan.Gemm!.Stacks, st => Assert.Equal(3, st.RowGroups!.Length));
        // The last axis's output (22) is not a multiple of 3: its phases have different grids, stored one by one.
        var ragged = DeconvKernel.GetPlan(Geo(1, 24, 64, 1, [9, 7], [2, 2], strides: [3, 3], outputPadding: [1, 2]), KernelIsa.Scalar, null);
        Assert.Contains(ragged.Gemm!.Stacks, st => st.RowGroups is null);
    }

    [Fact]
    public void WideKernelsWithManyChannels_StayOnTheGeneralPath()
    {
        // k4 s2 with 64 channels: taps overlap, the fused/channel paths keep it.
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 64, 64, 1, [8, 8], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), KernelIsa.Scalar, null).Gemm);
        // 2D k2 s2 on rows of 32 reads x in place on the fused path.
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 64, 64, 1, [32, 32], [2, 2], strides: [2, 2]), KernelIsa.Scalar, null).Gemm);
    }
}
