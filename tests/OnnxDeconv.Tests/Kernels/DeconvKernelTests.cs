using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using static OnnxDeconv.Tests.Kernels.KernelCheck;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>
/// Every ISA variant against <see cref="ReferenceConvTranspose"/> with |a-b| &lt;= 1e-5 + 1e-4*|b| (float32; the
/// relative part absorbs accumulation-order differences). Direct reads and the gathered panel are forced separately so
/// both code paths see every shape.
/// </summary>
public class DeconvKernelTests
{
    private static void AssertMatches(ConvTransposeGeometry g, KernelIsa isa, Epilogue? ep = null, IParallelFor? parallel = null, int seed = 1, bool withBias = true)
    {
        foreach (bool? direct in new bool?[] { null, true, false })
        {
            string? failure = Compare(g, isa, ep ?? Epilogue.None, direct, parallel, seed, withBias);
            Assert.True(failure is null, failure);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose1D_WidthSweep_EveryVectorTail_MatchesReference(KernelIsa isa)
    {
        // Widths 1..70 cover every tail of 8/16-lane vectors and of 1..4-vector pixel blocks; 11 output channels
        // leave a partial 8-channel block and a partial sub-block.
        for (int width = 1; width <= 70; width++)
            AssertMatches(Geo(1, 3, 11, 1, [width], [3], strides: [2], pads: [1, 1]), isa, seed: width);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose2D_ChannelAndSizeSweep_MatchesReference(KernelIsa isa)
    {
        int seed = 0;
        foreach (int cout in new[] { 1, 3, 5, 8, 9, 17 })
        foreach (int size in new[] { 1, 2, 5, 9, 17, 33 })
            AssertMatches(Geo(1, 4, cout, 1, [size, size + 1], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, seed: ++seed);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose3D_StrideTwo_MatchesReference(KernelIsa isa)
    {
        AssertMatches(Geo(1, 5, 6, 1, [3, 4, 5], [2, 3, 2], strides: [2, 2, 2]), isa);
        AssertMatches(Geo(1, 3, 4, 1, [4, 3, 18], [3, 3, 3], strides: [2, 1, 2], pads: [1, 0, 1, 0, 1, 2]), isa, seed: 2);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_GroupsAndDepthwise_MatchReference(KernelIsa isa)
    {
        AssertMatches(Geo(1, 6, 9, 3, [7, 20], [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]), isa);
        AssertMatches(Geo(1, 8, 8, 8, [9, 37], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, seed: 2);
        AssertMatches(Geo(2, 4, 8, 4, [40], [5], strides: [3], pads: [2, 0]), isa, seed: 3);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_DilationAsymmetricPadsOutputPadding_MatchReference(KernelIsa isa)
    {
        AssertMatches(Geo(1, 3, 5, 1, [6, 21], [3, 3], strides: [2, 3], dilations: [2, 3], pads: [0, 2, 3, 1], outputPadding: [1, 2]), isa);
        AssertMatches(Geo(1, 2, 3, 1, [19], [4], strides: [4], dilations: [3], pads: [5, 0], outputPadding: [2]), isa, seed: 2);
        // Stride larger than the kernel: some phases have no taps at all and get bias only.
        AssertMatches(Geo(1, 2, 3, 1, [5, 30], [2, 2], strides: [3, 3], outputPadding: [2, 1]), isa, seed: 3);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_OutputShapeBeyondFullLength_ExtendedPositionsGetBiasOnly(KernelIsa isa)
    {
        // Output longer than the full output: negative end pad; the extra positions see no tap. Resolve only accepts
        // the extension ONNX Runtime accepts (< stride), but the plugin op carries pads directly, so the kernel must
        // handle any negative end pad: build the geometry by hand (full lengths 11 and 41, extended to 14 and 45).
        var full = Geo(1, 3, 4, 1, [5, 20], [3, 3], strides: [2, 2]);
        long[] extra = [3, 4];
        var g = full with { Axes = full.Axes.Select((a, i) => a with { PadEnd = -extra[i], Output = a.Output + extra[i] }).ToArray() };
        Assert.True(g.Axes[0].PadEnd < 0 && g.Axes[1].PadEnd < 0);
        AssertMatches(g, isa);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_EachActivation_FusedEpilogueMatchesReference(KernelIsa isa)
    {
        var g = Geo(1, 3, 10, 1, [6, 19], [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 1]);
        foreach (var ep in new[]
        {
            new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
            new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
        })
            AssertMatches(g, isa, ep);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_BatchAndRealParallelFor_MatchesReferenceWithoutBias(KernelIsa isa)
    {
        var par = new ParallelForDouble(4);
        AssertMatches(Geo(3, 16, 20, 2, [9, 23], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]), isa, parallel: par, withBias: false);
        AssertMatches(Geo(2, 12, 7, 1, [4, 5, 6], [2, 2, 2], strides: [2, 2, 2]), isa, parallel: par, seed: 2);
        Assert.True(par.Calls >= 6);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_RandomConfigurations_MatchReference(KernelIsa isa)
    {
        var rng = new Random(1234);
        for (int c = 0; c < 80; c++)
        {
            int rank = rng.Next(1, 4);
            long group = rng.Next(3) == 0 ? rng.Next(1, 4) : 1;
            long cin = group * rng.Next(1, rank == 3 ? 4 : 7), cout = group * rng.Next(1, rank == 3 ? 5 : 12);
            var input = new long[rank]; var kernel = new long[rank]; var strides = new long[rank]; var dil = new long[rank];
            var pads = new long[2 * rank]; var op = new long[rank];
            for (int a = 0; a < rank; a++)
            {
                input[a] = rng.Next(1, rank == 1 ? 40 : rank == 2 ? 14 : 6);
                kernel[a] = rng.Next(1, 6);
                strides[a] = rng.Next(1, 5);
                dil[a] = rng.Next(1, 3);
                op[a] = rng.Next((int)Math.Max(strides[a], dil[a]));
                long full = strides[a] * (input[a] - 1) + op[a] + dil[a] * (kernel[a] - 1) + 1;
                pads[a] = rng.Next((int)Math.Min(full / 2, 4) + 1);
                pads[a + rank] = rng.Next((int)Math.Min(full - pads[a] - 1, 4) + 1);
            }
            var g = Geo(rng.Next(1, 3), cin, cout, group, input, kernel, strides, dil, pads, op);
            var ep = (rng.Next(4) == 0) ? new Epilogue(Activation.LeakyRelu, 0.1f) : Epilogue.None;
            bool? direct = (rng.Next(3)) switch { 0 => true, 1 => false, _ => null };
            string? failure = Compare(g, isa, ep, direct, null, seed: c);
            Assert.True(failure is null, $"case {c}: {failure}");
        }
    }

    /// <summary>Checks the shape really takes the fused last-axis path (else the fused tests would test nothing new).</summary>
    private static void AssertFused(ConvTransposeGeometry g, KernelIsa isa, int phases)
    {
        var plan = DeconvKernel.GetPlan(g, isa, null);
        Assert.True(plan.FusedPhases == phases, $"{Describe(g)}: FusedPhases {plan.FusedPhases}, expected {phases}");
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_KernelEqualsStride1D_FusedPhasesEveryTail_MatchesReference(KernelIsa isa)
    {
        // k == s: every phase is one tap, all s phases of a pixel run are computed together and written interleaved.
        // Widths 1..70 cover every tail of 1..4 vectors of 8/16 lanes (the last chunk overlaps, shorter rows go
        // through the panel); 29 output channels leave a partial channel block and sub-block, 3 take the few-channel
        // tile. Fusion needs an output at least as large as the extra tiles (workspace <= output): 29 channels from 16 on.
        int seed = 0;
        foreach (int s in new[] { 2, 3, 4 })
        foreach (int cout in new[] { 29, 3 })
        for (int width = 1; width <= 70; width++)
        {
            var g = Geo(1, 5, cout, 1, [width], [s], strides: [s]);
            if (cout == 29 && width >= 16) AssertFused(g, isa, s);
            AssertMatches(g, isa, seed: ++seed);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_KernelEqualsStride2D3DGroups_FusedPhases_MatchReference(KernelIsa isa)
    {
        var cases = new[]
        {
            Geo(1, 7, 9, 1, [5, 37], [2, 2], strides: [2, 2]),
            Geo(2, 6, 10, 2, [3, 41], [3, 3], strides: [3, 3]),
            Geo(1, 6, 9, 3, [4, 3, 35], [2, 2, 2], strides: [2, 2, 2]),
            Geo(1, 4, 5, 1, [3, 2, 19], [2, 3, 4], strides: [2, 3, 4]),
            // 16-pixel rows (the 3D U-Net shape): on AVX-512 the pixel block shrinks to one vector so rows take direct chunks.
            Geo(1, 6, 14, 1, [3, 4, 16], [2, 2, 2], strides: [2, 2, 2]),
            Geo(1, 6, 14, 1, [2, 3, 24], [2, 2, 2], strides: [2, 2, 2]),
            // More than 16 input channels with more output channels than a sub-block: direct reads go slice by slice
            // and each phase keeps one tile row per output channel until the last slice.
            Geo(1, 40, 20, 1, [3, 50], [2, 2], strides: [2, 2]),
            Geo(1, 40, 30, 2, [2, 70], [2, 2], strides: [2, 2]),
        };
        int seed = 0;
        foreach (var g in cases)
        {
            AssertFused(g, isa, (int)g.Axes[^1].Stride);
            AssertMatches(g, isa, seed: ++seed);
            AssertMatches(g, isa, seed: ++seed, withBias: false);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_KernelEqualsStrideShortRows_ChunksOfWholeRows_MatchReference(KernelIsa isa)
    {
        // Rows of 2, 8, 16 pixels (shorter than a pixel block on some variant): blocks of several whole rows packed
        // side by side; 15 rows per phase leave a partial block for the panel. Bias, Relu (vectorised) and Sigmoid.
        int multiRow = 0, seed = 0;
        foreach (int q in new[] { 2, 8, 16 })
        foreach (int cout in new[] { 3, 14 })
        {
            var g3 = Geo(1, 6, cout, 1, [3, 5, q], [2, 2, 2], strides: [2, 2, 2]);
            var g2 = Geo(2, 5, cout, 1, [15, q], [2, 2], strides: [2, 2]);
            foreach (var g in new[] { g3, g2 })
            {
                if (DeconvKernel.GetPlan(g, isa, null).FusedRows > 1) multiRow++;
                AssertMatches(g, isa, seed: ++seed);
                AssertMatches(g, isa, new Epilogue(Activation.Relu), seed: ++seed, withBias: false);
                AssertMatches(g, isa, new Epilogue(Activation.Sigmoid), seed: ++seed);
            }
        }
        Assert.True(multiRow > 0, $"{isa}: no shape took whole-row chunks");
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_KernelEqualsStride_EveryActivation_FusedEpilogueMatchesReference(KernelIsa isa)
    {
        foreach (int s in new[] { 2, 3 })
        {
            var g = Geo(1, 6, 11, 1, [4, 45], [s, s], strides: [s, s]);
            AssertFused(g, isa, s);
            foreach (var ep in new[]
            {
                Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
                new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
            })
                AssertMatches(g, isa, ep, seed: s);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_StrideTwoPadsAndOutputPadding_FusedWhereGridsAlign_MatchReference(KernelIsa isa)
    {
        // Output length a multiple of s: fused, also with crops at either end (begin pad shifts which input each phase reads).
        foreach (var (pads, op) in new (long[], long[])[] { ([0, 0, 0, 2], [0, 0]), ([0, 1, 1, 1], [0, 0]), ([1, 0, 2, 0], [0, 0]), ([0, 1, 0, 0], [0, 1]) })
        {
            var g = Geo(1, 5, 7, 1, [4, 40], [2, 2], strides: [2, 2], pads: pads, outputPadding: op);
            AssertFused(g, isa, 2);
            AssertMatches(g, isa, new Epilogue(Activation.Relu), seed: (int)pads[1] + 10 * (int)pads[3]);
        }
        // k > s (DCGAN k4 s2 p1, SR k3 s2 p1 op1): two taps per phase, fused too.
        var dcgan = Geo(1, 8, 13, 1, [6, 33], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        var sr = Geo(1, 8, 13, 1, [6, 33], [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 1]);
        AssertFused(dcgan, isa, 2);
        AssertFused(sr, isa, 2);
        AssertMatches(dcgan, isa, new Epilogue(Activation.LeakyRelu, Alpha: 0.1f));
        AssertMatches(sr, isa, seed: 2);
        // Rows whose interior (every tap of every phase in range) is shorter than one vector: interior chunks could never
        // be taken, so every pixel goes through zero-padded fused chunks instead, while the 4-pixel rows are at least half
        // a vector (8-lane variants; 16-lane ones keep the unfused plan; scalar has 1-lane vectors: interior chunks).
        var small = Geo(1, 8, 13, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        var smallPlan = DeconvKernel.GetPlan(small, isa, null);
        bool halfVector = isa != KernelIsa.Scalar && 2 * 4 >= smallPlan.Lanes;
        Assert.Equal(halfVector, smallPlan.Padded);
        AssertFused(small, isa, halfVector || isa == KernelIsa.Scalar ? 2 : 1);
        AssertMatches(small, isa, seed: 5);
        // Odd output length (crop of 1, or output_padding 1 with k == s): the phases' grids differ, so not fused.
        var odd = Geo(1, 5, 7, 1, [4, 40], [2, 2], strides: [2, 2], pads: [0, 0, 0, 1]);
        AssertFused(odd, isa, 1);
        AssertMatches(odd, isa, seed: 3);
        var oddOp = Geo(1, 5, 7, 1, [40], [2], strides: [2], outputPadding: [1]);
        AssertFused(oddOp, isa, 1);
        AssertMatches(oddOp, isa, seed: 4);
    }

    /// <summary>Checks the shape takes the zero-padded fused path (every pixel from packed chunks, no border gathers).</summary>
    private static void AssertPadded(ConvTransposeGeometry g, KernelIsa isa)
    {
        var plan = DeconvKernel.GetPlan(g, isa, null);
        Assert.True(plan.Padded, $"{Describe(g)} on {isa}: not padded (FusedPhases {plan.FusedPhases})");
        Assert.True(plan.ScratchFloats <= g.Batch * g.OutChannels * plan.OutSpatial, $"{Describe(g)}: workspace {plan.ScratchFloats} floats > output");
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_FewOutputChannels_PaddedChunksEveryRowLength_MatchReference(KernelIsa isa)
    {
        // Cout 1..4 (DCGAN 64->3 shape, k4 s2 p1): every pixel, borders included, from zero-padded packed chunks.
        // Row lengths 1..40 cover blocks of several whole rows with a partial last block, rows exactly one block, and
        // rows longer than a block (overlapping last chunk); 12 rows per phase leave partial multi-row blocks. Shorter
        // rows give outputs too small for a packed chunk (workspace <= output): those keep the gather path.
        int seed = 100;
        foreach (int cout in new[] { 1, 2, 3, 4 })
        foreach (int width in new[] { 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40 })
        {
            var g = Geo(1, 6, cout, 1, [12, width], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
            if (width >= 16) AssertPadded(g, isa);
            AssertMatches(g, isa, seed: ++seed);
        }
        // Five output channels with a full interior vector keep the interior-chunk path (the padded path is for <= 4).
        var five = Geo(1, 6, 5, 1, [5, 40], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        Assert.False(DeconvKernel.GetPlan(five, isa, null).Padded);
        AssertMatches(five, isa, seed: 7);
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_FewOutputChannels_Padded1D3DGroupsCropsBatch_MatchReference(KernelIsa isa)
    {
        var cases = new[]
        {
            Geo(1, 5, 3, 1, [300], [4], strides: [2], pads: [1, 1]),
            Geo(1, 7, 2, 1, [200], [6], strides: [3], pads: [2, 1]),
            Geo(2, 6, 4, 2, [12, 19], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
            Geo(1, 9, 3, 3, [10, 11], [3, 4], strides: [2, 2], pads: [0, 1, 1, 1]),
            Geo(1, 4, 3, 1, [6, 6, 18], [4, 4, 4], strides: [2, 2, 2], pads: [1, 1, 1, 1, 1, 1]),
            // Crops at the end only / the beginning only (output length still a multiple of s).
            Geo(1, 6, 3, 1, [12, 20], [4, 4], strides: [2, 2], pads: [0, 0, 2, 2]),
            Geo(1, 6, 3, 1, [12, 20], [4, 4], strides: [2, 2], pads: [2, 2, 0, 0]),
            // Many input channels: the packed chunk is split into several channel slices (partial sums in the tiles).
            Geo(1, 150, 3, 1, [8, 33], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
        };
        int seed = 200;
        foreach (var g in cases)
        {
            AssertPadded(g, isa);
            AssertMatches(g, isa, seed: ++seed);
            AssertMatches(g, isa, seed: ++seed, withBias: false);
            AssertMatches(g, isa, seed: ++seed, parallel: new ParallelForDouble(3));
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_PaddedChunks_EveryActivation_FusedEpilogueMatchesReference(KernelIsa isa)
    {
        // Short rows (DCGAN 8x8 shape, under a vector of interior) and a 3-channel layer; bias plus each activation.
        var shapes = new[]
        {
            Geo(1, 10, 14, 1, [8, 8], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
            Geo(1, 6, 3, 1, [12, 34], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
        };
        foreach (var g in shapes)
        {
            if (isa != KernelIsa.Scalar || g.OutChannels == 3) AssertPadded(g, isa);
            foreach (var ep in new[]
            {
                Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
                new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
            })
                AssertMatches(g, isa, ep, seed: (int)ep.Kind + 300);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_FewOutputChannels_RowPanelChunks_EveryRowLengthAndCout_MatchReference(KernelIsa isa)
    {
        // Row panels (each input row copied once per channel, zero-bordered; shifts read offsets into it) are taken for
        // padded chunks of one block of one row: Cout <= 4 and rows a whole number of vectors (DCGAN 64->3: 32-pixel
        // rows). Rows 1..40 cover the other chunk shapes too; 7 rows per phase put a row outside x at both ends.
        int seed = 500;
        foreach (int cout in new[] { 1, 2, 3, 4, 5 })
        foreach (int width in Enumerable.Range(1, 40))
        {
            var g = Geo(1, 6, cout, 1, [7, width], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
            var plan = DeconvKernel.GetPlan(g, isa, null);
            if (cout <= 4 && width >= 16 && width % plan.Lanes == 0)
                Assert.True(plan.RowPanel, $"{Describe(g)} on {isa}: no row panel");
            // 20-pixel rows fill no whole number of 8- or 16-lane blocks: those chunks keep the per-shift copy.
            if (width == 20 && plan.Lanes >= 8)
                Assert.False(plan.RowPanel, $"{Describe(g)} on {isa}: row panel on a partial block");
            if (plan.RowPanel)
            {
                Assert.True(plan.Padded && plan.PadRows == 1 && plan.PadLen == plan.PixelBlock, $"{Describe(g)} on {isa}: row panel on a multi-row chunk");
                AssertPadded(g, isa);
            }
            AssertMatches(g, isa, seed: ++seed);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_RowPanelChunks_1D3DCropsSlicesGroupsEveryActivation_MatchReference(KernelIsa isa)
    {
        var cases = new[]
        {
            // 1D (no leading axis: one row per channel), 3D (two leading axes: four rows), k3 s2 p1 op1 (SR).
            Geo(1, 5, 3, 1, [320], [4], strides: [2], pads: [1, 1]),
            Geo(1, 4, 3, 1, [5, 4, 32], [4, 4, 4], strides: [2, 2, 2], pads: [1, 1, 1, 1, 1, 1]),
            Geo(1, 6, 2, 1, [6, 32], [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 1]),
            // Crops at the end only / the beginning only: the zero border on one side of the row.
            Geo(1, 6, 3, 1, [6, 48], [4, 4], strides: [2, 2], pads: [0, 0, 2, 2]),
            Geo(1, 6, 3, 1, [6, 48], [4, 4], strides: [2, 2], pads: [2, 2, 0, 0]),
            // Many input channels (several packed slices, partial sums in the tiles); batch and groups.
            Geo(1, 150, 3, 1, [5, 32], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
            Geo(2, 6, 4, 2, [5, 64], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]),
        };
        int seed = 700;
        foreach (var g in cases)
        {
            Assert.True(DeconvKernel.GetPlan(g, isa, null).RowPanel, $"{Describe(g)} on {isa}: no row panel");
            AssertPadded(g, isa);
            foreach (var ep in new[]
            {
                Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
                new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
            })
                AssertMatches(g, isa, ep, seed: ++seed);
            AssertMatches(g, isa, seed: ++seed, withBias: false);
            AssertMatches(g, isa, seed: ++seed, parallel: new ParallelForDouble(3));
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_PaddedHalfVectorAndOddRowSegments_EveryActivation_MatchesReference(KernelIsa isa)
    {
        // decoder_3d's layer (3D 32->16 k2 s2, 8-pixel rows): on AVX-512 the padded chunks hold pairs of half-vector rows
        // stored by one interleaving vector; 3x7 rows leave an odd last row; 12-pixel rows and stride 3 take the tile
        // epilogue with scalar interleaving. Every activation, with and without bias, on several threads.
        var shapes = new[]
        {
            Geo(1, 32, 16, 1, [4, 8, 8], [2, 2, 2], strides: [2, 2, 2]),
            Geo(1, 5, 6, 1, [3, 7, 8], [2, 2, 2], strides: [2, 2, 2]),
            Geo(1, 6, 7, 1, [5, 12], [2, 2], strides: [2, 2]),
            Geo(1, 5, 3, 1, [4, 7], [3, 3], strides: [3, 3]),
        };
        var halfRows = DeconvKernel.GetPlan(shapes[0], isa, null);
        if (halfRows.Lanes == 16) Assert.True(halfRows.Padded, $"{Describe(shapes[0])} on {isa}: not padded");
        int seed = 400;
        foreach (var g in shapes)
        foreach (var ep in new[]
        {
            Epilogue.None, new Epilogue(Activation.Relu), new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
            new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f), new Epilogue(Activation.Sigmoid), new Epilogue(Activation.Tanh),
        })
        {
            AssertMatches(g, isa, ep, seed: ++seed);
            AssertMatches(g, isa, ep, seed: ++seed, withBias: false);
            AssertMatches(g, isa, ep, seed: ++seed, parallel: new ParallelForDouble(3));
        }
    }

    [Fact]
    public void WorkspaceBytes_FusedUNetAnd3DLayers_AtMostTheOutputSize()
    {
        foreach (var g in new[]
        {
            Geo(1, 128, 64, 1, [64, 64], [2, 2], strides: [2, 2]),
            Geo(1, 512, 256, 1, [32, 32], [2, 2], strides: [2, 2]),
            Geo(1, 64, 32, 1, [16, 16, 16], [2, 2, 2], strides: [2, 2, 2]),
            Geo(1, 3, 2, 1, [16], [2], strides: [2]),
        })
        {
            long outputBytes = 4L * g.OutputShape.Aggregate(1L, (p, v) => p * v);
            Assert.InRange(DeconvKernel.WorkspaceBytes(g), 1, outputBytes);
        }
    }

    [Theory, MemberData(nameof(Isas), MemberType = typeof(KernelCheck))]
    public void ConvTranspose_ManyInputChannelsTinyOutput_PanelSlicedOverChannels_MatchesReference(KernelIsa isa)
    {
        // The border panel must stay within the output's size, so it is filled a slice of input channels at a time.
        var g = Geo(1, 64, 5, 1, [2, 3], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        Assert.True(DeconvKernel.GetPlan(g, isa, false).CiChunk < 64);
        AssertMatches(g, isa, new Epilogue(Activation.Relu));
    }

    [Fact]
    public void WorkspaceBytes_WideDcganLayer_AtMostTheOutputSize()
    {
        var g = Geo(1, 512, 256, 1, [4, 4], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        long outputBytes = 4L * g.OutputShape.Aggregate(1L, (p, v) => p * v);
        Assert.InRange(DeconvKernel.WorkspaceBytes(g), 1, outputBytes);
    }

    [Fact]
    public void PackWeights_LayoutIndependentOfPadsAndIsa_SamePackedTensorServesEveryVariant()
    {
        var a = Geo(1, 4, 10, 2, [5, 6], [3, 4], strides: [2, 2]);
        var b = Geo(1, 4, 10, 2, [7, 3], [3, 4], strides: [2, 2], pads: [1, 2, 0, 1], outputPadding: [1, 0]);
        var (w, pa, pb) = PackForBoth(a, b);
        Assert.Equal(pa, pb);
        Assert.NotEqual(w, pa); // the layout really is phase-split, not a copy
        Assert.Equal(w.OrderBy(v => v), pa.OrderBy(v => v)); // a permutation: every weight exactly once
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(12)]
    [InlineData(97)]
    public void PackWeights_InSlices_EqualsPackingWhole(int slice)
    {
        // The large-model path packs a weight slice by slice into a file: any cut (inside a 12-channel block, inside a
        // row, across groups and phases) must give exactly the whole packing.
        var g = Geo(1, 6, 26, 2, [5, 6], [3, 4], strides: [2, 3], dilations: [1, 2]);
        var w = Random(new Random(8), g.WeightShape.Aggregate(1L, (p, v) => p * v));
        var whole = new float[DeconvKernel.PackedWeightLength(g)];
        DeconvKernel.PackWeights(g, w, whole);
        var sliced = new float[whole.Length];
        for (int first = 0; first < sliced.Length; first += slice)
            DeconvKernel.PackWeights(g, w, first, sliced.AsSpan(first, Math.Min(slice, sliced.Length - first)));
        Assert.Equal(whole, sliced);
        // Negative: a slice reaching past the end is refused, not silently short.
        Assert.Throws<ArgumentException>(() => DeconvKernel.PackWeights(g, w, whole.Length - 2, new float[3]));
    }

    [Fact]
    public void Run_WrongBufferSizes_ThrowClearErrors()
    {
        var g = Geo(1, 2, 3, 1, [4], [3], strides: [2]);
        var packed = new float[DeconvKernel.PackedWeightLength(g)];
        var y = new float[g.OutputShape.Aggregate(1L, (p, v) => p * v)];
        var ex = Assert.Throws<ArgumentException>(() => DeconvKernel.Run(g, Epilogue.None, new float[7], packed, [], y));
        Assert.Contains("X has 7 values", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => DeconvKernel.Run(g, Epilogue.None, new float[8], packed, new float[2], y));
        Assert.Contains("B has 2 values", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => DeconvKernel.Run(g, Epilogue.None, new float[8], packed, [], new float[3]));
        Assert.Contains("Y has 3 values", ex.Message);
        Assert.Throws<ArgumentException>(() => DeconvKernel.PackWeights(g, new float[5], packed));
    }

    [Fact]
    public void Run_ConcurrentCallsSameGeometry_IdenticalResults()
    {
        // Plans, pooled jobs and per-thread scratch are shared between calls: concurrent callers must not interfere.
        var g = Geo(1, 24, 20, 1, [10, 11], [4, 4], strides: [2, 2], pads: [1, 1, 1, 1]);
        var x = Random(new Random(1), 24 * 110);
        var packed = Random(new Random(2), DeconvKernel.PackedWeightLength(g));
        long outLen = g.OutputShape.Aggregate(1L, (p, v) => p * v);
        var expected = new float[outLen];
        DeconvKernel.Run(g, Epilogue.None, x, packed, [], expected);
        var results = new float[8][];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var y = new float[outLen];
            for (int rep = 0; rep < 5; rep++) DeconvKernel.Run(g, Epilogue.None, x, packed, [], y, new ParallelForDouble(2));
            results[i] = y;
        });
        foreach (var y in results) Assert.Equal(expected, y);
    }

    [Fact]
    public void IsaSelector_EnvironmentValues_ParsedOrExplained()
    {
        Assert.Equal(KernelIsa.Scalar, KernelIsaSelector.Detect("scalar", out var note));
        Assert.Null(note);
        Assert.Equal(KernelIsaSelector.Supported[0], KernelIsaSelector.Detect("sse9", out note));
        Assert.Contains("sse9", note);
        Assert.Equal(KernelIsaSelector.Supported[0], KernelIsaSelector.Detect(null, out _));
        Assert.Contains(KernelIsaSelector.Active, KernelIsaSelector.Supported);
    }
}
