using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using static OnnxDeconv.Tests.Kernels.KernelCheck;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>
/// The channel-vectorised path (<see cref="ChannelLayout"/>: vectors over output channels, broadcast inputs) on every
/// ISA variant against <see cref="ReferenceConvTranspose"/> with |a-b| &lt;= 1e-5 + 1e-4*|b| (float32). Each case
/// asserts the plan really takes that path (forced, or chosen by the heuristic), and the same packed weights also run
/// through the pixel path.
/// </summary>
public class ChannelKernelTests
{
    private static void AssertChannelPath(ConvTransposeGeometry g, KernelIsa isa, Epilogue? ep = null, IParallelFor? parallel = null,
        int seed = 1, bool withBias = true, bool forced = true)
    {
        bool? channel = forced ? true : null;
        Assert.True(DeconvKernel.GetPlan(g, isa, null, channel).Channel is not null, $"{isa} {Describe(g)}: channel path not taken");
        string? failure = Compare(g, isa, ep ?? Epilogue.None, null, parallel, seed, withBias, channel);
        Assert.True(failure is null, failure);
        failure = Compare(g, isa, ep ?? Epilogue.None, null, parallel, seed, withBias, channel: false);
        Assert.True(failure is null, failure);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_OutputChannels1To40_EveryVectorAndPixelTail_MatchesReference(KernelIsa isa)
    {
        // 1..40 channels leave every remainder of 4/8/16-lane vectors and of the 3-vector tile; 3x5 inputs with k4 s2
        // p1 give phases of 15 pixels (pixel-tile tails) with border taps on every side.
        for (int cout = 1; cout <= 40; cout++)
            AssertChannelPath(Geo(1, 5, cout, 1, [3, 5], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, seed: cout);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_WideBlocksWithNarrowLastBlock_MatchesReference(KernelIsa isa)
    {
        // 96..113 channels: 48-channel packed blocks, the last one 0..17 wide (not a whole number of vectors).
        foreach (int cout in new[] { 96, 100, 111, 113 })
            AssertChannelPath(Geo(1, 7, cout, 1, [2, 3], [3, 3], strides: [2, 2], pads: [1, 0, 0, 1]), isa, seed: cout);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_1D2D3D_OddKernelsDilationCropsOutputPadding_MatchReference(KernelIsa isa)
    {
        AssertChannelPath(Geo(1, 9, 19, 1, [13], [5], strides: [3], pads: [2, 1], outputPadding: [2]), isa);
        AssertChannelPath(Geo(1, 6, 17, 1, [4, 3], [3, 5], strides: [2, 3], dilations: [2, 1], pads: [0, 2, 1, 0], outputPadding: [1, 0]), isa, seed: 2);
        AssertChannelPath(Geo(1, 4, 21, 1, [2, 3, 2], [3, 2, 3], strides: [2, 2, 1], pads: [1, 0, 1, 0, 1, 1]), isa, seed: 3);
        AssertChannelPath(Geo(1, 3, 13, 1, [5], [16], strides: [8], pads: [4, 4]), isa, seed: 4);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_RowsOfFourAndEightPixels_VectorPiecesMaskedAtBordersAndBufferEnds_MatchReference(KernelIsa isa)
    {
        // Phase rows of 4, 8 and 16 pixels: whole-vector pieces, masked where a tap reads past a row end, per pixel
        // where the vector would leave X's buffer (first and last channel of the tensor).
        AssertChannelPath(Geo(2, 6, 20, 2, [8, 8], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, new Epilogue(Activation.Relu));
        AssertChannelPath(Geo(1, 5, 9, 1, [3, 16], [3, 4], strides: [2, 2], pads: [1, 2, 0, 1]), isa, seed: 2);
        AssertChannelPath(Geo(1, 3, 33, 1, [2, 3, 8], [2, 3, 4], strides: [1, 2, 2], pads: [0, 1, 1, 1, 0, 2]), isa, seed: 3);
        AssertChannelPath(Geo(2, 4, 17, 1, [4], [6], strides: [2], pads: [2, 2]), isa, seed: 4);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_GroupsBatchAndRealParallelFor_MatchReference(KernelIsa isa)
    {
        var par = new ParallelForDouble(4);
        AssertChannelPath(Geo(2, 6, 18, 3, [3, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, parallel: par);
        AssertChannelPath(Geo(2, 4, 200, 2, [3, 2], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, parallel: par, seed: 2, withBias: false);
        Assert.True(par.Calls >= 4);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_StrideBeyondKernelReach_BiasOnlyPhasesWritten(KernelIsa isa)
    {
        // k2 s3: one phase per axis has no taps; its outputs are bias + activation only.
        AssertChannelPath(Geo(1, 5, 20, 1, [3, 4], [2, 2], strides: [3, 3]), isa, new Epilogue(Activation.Sigmoid));
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_EachActivation_FusedEpilogueMatchesReference(KernelIsa isa)
    {
        var g = Geo(1, 6, 35, 1, [3, 3], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        foreach (var ep in new[]
        {
            Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
            new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
        })
            AssertChannelPath(g, isa, ep);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_ChosenForWideSmallImageLayers_MatchesReference(KernelIsa isa)
    {
        // The benchmark's DCGAN 512->256 at 4x4 and 1D 512->256 k16 s8 (slices of input channels, 48-wide blocks), and
        // a larger image (several units per phase).
        AssertChannelPath(Geo(1, 512, 256, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, new Epilogue(Activation.Relu), forced: false);
        AssertChannelPath(Geo(1, 512, 256, 1, [32], [16], strides: [8], pads: [4, 4]), isa, seed: 2, forced: false);
        AssertChannelPath(Geo(1, 64, 100, 1, [24, 20], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, seed: 3, forced: false);
    }

    [Fact]
    public void ChannelPath_NotChosenForOneTapPerPhaseFewChannelsOrShortContraction()
    {
        var isa = KernelIsaSelector.Active;
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 512, 256, 1, [32, 32], [2, 2], strides: [2, 2]), isa, null).Channel);
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 128, 64, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, null).Channel);
        Assert.Null(DeconvKernel.GetPlan(Geo(1, 16, 128, 1, [8, 8], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, null).Channel);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ChannelPath_PhasesLongerThanAUnit_SplitMidRow_MatchReference(KernelIsa isa)
    {
        // Phases of 300+ pixels are cut into units of at most 256 (equal, whole register tiles), some mid-row.
        var g = Geo(1, 4, 20, 1, [21, 29], [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]);
        Assert.True(DeconvKernel.GetPlan(g, isa, null, true).Channel!.UnitPhase.Length > 4);
        AssertChannelPath(g, isa, new Epilogue(Activation.Relu), parallel: new ParallelForDouble(3));
        AssertChannelPath(Geo(2, 3, 11, 1, [700], [4], strides: [2], pads: [1, 2]), isa, seed: 2);
    }

    [Fact]
    public void PackedBlocks_WideOnlyForManyChannelsAndSeveralTapsPerPhase()
    {
        Assert.Equal(DeconvPlan.WideBlock, DeconvPlan.BlockFor(Geo(1, 512, 256, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1])));
        Assert.Equal(DeconvPlan.WideBlock, DeconvPlan.BlockFor(Geo(1, 512, 96, 1, [32], [16], strides: [8], pads: [4, 4])));
        Assert.Equal(DeconvPlan.ChannelBlock, DeconvPlan.BlockFor(Geo(1, 512, 256, 1, [32, 32], [2, 2], strides: [2, 2])));
        Assert.Equal(DeconvPlan.ChannelBlock, DeconvPlan.BlockFor(Geo(1, 512, 95, 1, [4, 4], [4, 4], strides: [2, 2])));
    }

    [Fact]
    public void WorkspaceBytes_ChannelPathLayers_AtMostTheOutputSize()
    {
        foreach (var g in new[]
        {
            Geo(1, 512, 256, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
            Geo(1, 256, 128, 1, [8, 8], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
            Geo(1, 512, 256, 1, [32], [16], strides: [8], pads: [4, 4]),
            Geo(1, 512, 256, 1, [16, 16], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
            Geo(1, 256, 128, 1, [64, 64], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
        })
        {
            long outputBytes = 4L * g.OutputShape.Aggregate(1L, (p, v) => p * v);
            Assert.InRange(DeconvKernel.WorkspaceBytes(g), 1, outputBytes);
        }
    }

    [Fact]
    public void PackWeights_WideBlocksDependOnChannelsOnly_SamePackedTensorForEveryImageSize()
    {
        var a = Geo(1, 3, 100, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        var b = Geo(1, 3, 100, 1, [40, 9], [4, 4], strides: [2, 2]);
        var (w, pa, pb) = PackForBoth(a, b);
        Assert.Equal(pa, pb);
        // Phase (0,0) of k4 s2 has 4 taps; its first block holds 48 channels per (ci, tap): element 1 is channel 1's
        // weight of input channel 0, tap 0 (kernel index 0 for the (0,0) phase).
        Assert.Equal(w[1 * 16], pa[1]);
        Assert.Equal(w.OrderBy(v => v), pa.OrderBy(v => v));
    }
}
