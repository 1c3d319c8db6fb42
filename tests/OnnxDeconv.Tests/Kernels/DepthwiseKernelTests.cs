using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using static OnnxDeconv.Tests.Kernels.KernelCheck;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>
/// The depthwise path (one input channel per group, channel multiplier 1..12) of every ISA variant against
/// <see cref="ReferenceConvTranspose"/> with |a-b| &lt;= 1e-5 + 1e-4*|b| (float32). Each case first checks that the plan
/// really takes the depthwise path, so a dispatch change cannot silently route these shapes elsewhere.
/// </summary>
public class DepthwiseKernelTests
{
    private static void AssertDepthwiseMatches(ConvTransposeGeometry g, KernelIsa isa, Epilogue? ep = null, IParallelFor? parallel = null,
        int seed = 1, bool withBias = true)
    {
        Assert.True(DeconvKernel.GetPlan(g, isa, null).Depthwise, $"not on the depthwise path: {Describe(g)}");
        string? failure = Compare(g, isa, ep ?? Epilogue.None, null, parallel, seed, withBias);
        Assert.True(failure is null, failure);
    }

    private static ConvTransposeGeometry Dw(long channels, long multiplier, long[] input, long[] kernel, long[]? strides = null,
        long[]? dilations = null, long[]? pads = null, long[]? outputPadding = null, long n = 1) =>
        Geo(n, channels, channels * multiplier, channels, input, kernel, strides, dilations, pads, outputPadding);

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void Depthwise_RowLengthSweep_EveryVectorTailAndMultiplier_MatchesReference(KernelIsa isa)
    {
        // Output rows of 2 .. 70*s elements cover every tail of the 4-vector main loop, the 1-vector loop and the
        // per-phase tile for 1-, 8- and 16-lane vectors. 16 channels and 10 rows keep the padded plane copy within the output even for the
        // shortest rows, so the depthwise path takes them.
        int seed = 0;
        foreach (int s in new[] { 1, 2, 3 })
        for (int width = 1; width <= 70; width++)
        for (int mult = 1; mult <= 3; mult++)
            AssertDepthwiseMatches(Dw(16, mult, [10, width], [2, 4], strides: [1, s], pads: [0, 1, 1, 1]), isa, seed: ++seed);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void Depthwise2D_KernelStrideCombos_IncludingKernelSmallerEqualAndLargerThanStride_MatchReference(KernelIsa isa)
    {
        int seed = 0;
        for (int s = 1; s <= 4; s++)
        for (int k = 1; k <= 5; k++)
        {
            long p = Math.Min(k - 1, 2);
            AssertDepthwiseMatches(Dw(16, 1 + seed % 3, [5, 2 + seed % 19], [k, k], strides: [s, s], pads: [p, 0, 0, p]), isa, seed: ++seed);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void Depthwise_DilationCropsAndOutputPadding_MatchReference(KernelIsa isa)
    {
        AssertDepthwiseMatches(Dw(3, 2, [6, 21], [3, 3], strides: [2, 3], dilations: [2, 3], pads: [0, 2, 3, 1], outputPadding: [1, 2]), isa);
        AssertDepthwiseMatches(Dw(2, 1, [19], [4], strides: [4], dilations: [3], pads: [5, 0], outputPadding: [2]), isa, seed: 2);
        // As in GTCRN: stride 1, dilation, pads (k-1)*d: the output is shorter than the full length.
        AssertDepthwiseMatches(Dw(4, 1, [7, 33], [3, 3], dilations: [5, 2], pads: [10, 4, 0, 0]), isa, seed: 3);
        // Stride larger than the kernel: some phases have no taps at all and get bias only.
        AssertDepthwiseMatches(Dw(2, 3, [5, 30], [2, 2], strides: [3, 3], outputPadding: [2, 1]), isa, seed: 4);
        // Crops larger than the kernel reach on the last axis: rows start and end inside the input.
        AssertDepthwiseMatches(Dw(2, 1, [3, 40], [2, 3], strides: [1, 2], pads: [1, 7, 0, 9]), isa, seed: 5);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void Depthwise1D2D3D_BatchAndRealParallelFor_MatchReference(KernelIsa isa)
    {
        var par = new ParallelForDouble(4);
        AssertDepthwiseMatches(Dw(5, 1, [40], [5], strides: [3], pads: [2, 0], n: 2), isa, parallel: par);
        AssertDepthwiseMatches(Dw(8, 1, [9, 37], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1], n: 2), isa, parallel: par, seed: 2, withBias: false);
        AssertDepthwiseMatches(Dw(3, 2, [4, 5, 19], [3, 2, 4], strides: [2, 1, 2], pads: [1, 0, 1, 0, 1, 2]), isa, parallel: par, seed: 3);
        AssertDepthwiseMatches(Dw(2, 3, [3, 4, 6], [2, 2, 2], strides: [2, 2, 2]), isa, parallel: par, seed: 4);
        Assert.True(par.Calls >= 4);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void Depthwise_EachActivation_FusedEpilogueMatchesReference(KernelIsa isa)
    {
        foreach (var ep in new[]
        {
            new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
            new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
        })
        foreach (int s in new[] { 1, 2, 3 })
            AssertDepthwiseMatches(Dw(3, 2, [6, 19], [3, 3], strides: [s, s], pads: [1, 1, 1, 1], outputPadding: [s - 1, s - 1]), isa, ep);
    }

    [Fact]
    public void DepthwisePlan_WorkspaceWithinOneChannelsOutput_ElseGeneralPath()
    {
        var g = Dw(64, 1, [64, 64], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        var plan = DeconvKernel.GetPlan(g, KernelIsa.Scalar, null);
        Assert.True(plan.Depthwise);
        Assert.InRange(plan.ScratchFloats, 1, 128 * 128);
        // Heavy cropping: the padded input plane would be larger than the whole output, so the general path takes it.
        var cropped = Dw(2, 1, [64, 64], [1, 1], pads: [30, 30, 30, 30]);
        Assert.False(DeconvKernel.GetPlan(cropped, KernelIsa.Scalar, null).Depthwise);
        Assert.Null(Compare(cropped, KernelIsa.Scalar, Epilogue.None, null, null, 7));
        // More than one channel block per group or more than one input channel per group: general path.
        Assert.False(DeconvKernel.GetPlan(Dw(2, 13, [5, 5], [3, 3], strides: [2, 2]), KernelIsa.Scalar, null).Depthwise);
        Assert.False(DeconvKernel.GetPlan(Geo(1, 4, 4, 2, [5, 5], [3, 3], strides: [2, 2]), KernelIsa.Scalar, null).Depthwise);
    }
}
