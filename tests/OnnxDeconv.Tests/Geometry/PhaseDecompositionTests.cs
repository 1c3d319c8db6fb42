using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;
using OnnxDeconv.Tests.Kernels;

namespace OnnxDeconv.Tests.Geometry;

/// <summary>
/// The phase decomposition against the ConvTranspose definition <c>y[o] = sum_{i*s + k*d == o + pb} x[i]*w[k]</c>, on
/// seeded random geometry (pads, dilations, output_padding, output_shape, strides larger and smaller than the kernel).
/// </summary>
public sealed class PhaseDecompositionTests
{
    /// <summary>Random resolvable geometries; <paramref name="rank"/> spatial axes.</summary>
    private static IEnumerable<ConvTransposeGeometry> RandomGeometries(int seed, int count, int rank, int maxInput = 9,
        long batch = 1, long cin = 2, long cout = 2, long group = 1)
    {
        var rng = new Random(seed);
        int made = 0, tries = 0;
        while (made < count && tries++ < count * 50)
        {
            var input = new long[rank];
            var kernel = new long[rank];
            var strides = new long[rank];
            var dil = new long[rank];
            var op = new long[rank];
            var pads = new long[2 * rank];
            for (int a = 0; a < rank; a++)
            {
                input[a] = rng.Next(1, maxInput + 1);
                kernel[a] = rng.Next(1, 8);
                strides[a] = rng.Next(1, 7); // often larger than the kernel, often smaller
                dil[a] = rng.Next(1, 4);
                op[a] = rng.Next(0, (int)Math.Max(strides[a], dil[a]));
                pads[a] = rng.Next(0, 6);
                pads[a + rank] = rng.Next(0, 6);
            }
            long[]? outputShape = null;
            if (rng.Next(4) == 0)
            {
                // output_shape: may ask for a longer output than the full one (negative end pad), within ORT's rule.
                outputShape = new long[rank];
                for (int a = 0; a < rank; a++)
                {
                    long full = strides[a] * (input[a] - 1) + op[a] + dil[a] * (kernel[a] - 1) + 1;
                    outputShape[a] = Math.Max(1, full - rng.Next(-1, 5));
                }
                pads = null!;
            }
            ConvTransposeGeometry g;
            try
            {
                g = KernelCheck.Geo(batch, cin, cout, group, input, kernel, strides, dil, pads, op, outputShape);
            }
            catch (GeometryException)
            {
                continue; // pads cropping everything, or an output_shape ORT refuses
            }
            made++;
            yield return g;
        }
        Assert.Equal(count, made);
    }

    [Fact]
    public void EveryAxisOutput_GetsExactlyTheDefinitionsInputKernelPairs()
    {
        int checkedAxes = 0;
        foreach (var g in RandomGeometries(seed: 31, count: 400, rank: 1, maxInput: 12))
        {
            var a = g.Axes[0];
            var axis = new PhaseDecomposition(g).Axes[0];
            Assert.Equal((int)a.Stride, axis.Phases.Count);
            var seen = new int[a.Output];
            foreach (var ph in axis.Phases)
            {
                Assert.InRange(ph.FirstOutput, 0, a.Stride - 1);
                Assert.True(ph.Taps.Zip(ph.Taps.Skip(1)).All(p => p.First.Kernel < p.Second.Kernel && p.First.Offset <= p.Second.Offset),
                    "taps are ordered by kernel index, offsets ascending");
                for (long q = 0; q < ph.Count; q++)
                {
                    long o = ph.FirstOutput + q * a.Stride;
                    seen[o]++;
                    Assert.Equal(ph.Residue, axis.ResidueOf(o));
                    var fromPhase = ph.Taps.Select(t => (I: ph.InputIndex(q, t), K: t.Kernel)).Where(p => p.I >= 0 && p.I < a.Input).ToHashSet();
                    var definition = new HashSet<(long, long)>();
                    for (long i = 0; i < a.Input; i++)
                        for (long k = 0; k < a.Kernel; k++)
                            if (i * a.Stride + k * a.Dilation == o + a.PadBegin) definition.Add((i, k));
                    Assert.True(definition.SetEquals(fromPhase), $"{KernelCheck.Describe(g)} o={o}");
                }
                // A phase's grid ends at the last output of its residue.
                Assert.True(ph.FirstOutput + ph.Count * a.Stride >= a.Output);
            }
            Assert.All(seen, n => Assert.Equal(1, n)); // every output in exactly one phase
            Assert.Equal(AxisDecomposition.MaxTapsOf(a), axis.MaxTaps);
            checkedAxes++;
        }
        Assert.Equal(400, checkedAxes);
    }

    [Theory]
    [InlineData(2, 41)]
    [InlineData(3, 42)]
    public void ConvolutionRunFromTheCombinations_MatchesTheScalarReference(int rank, int seed)
    {
        // The D-dimensional product: a naive convolution driven only by the combinations' taps and grids.
        foreach (var g in RandomGeometries(seed, count: 60, rank, maxInput: rank == 2 ? 6 : 4, batch: 2, cin: 4, cout: 6, group: 2))
        {
            var rng = new Random(seed);
            var x = KernelCheck.Random(rng, g.InputShape.Aggregate(1L, (p, v) => p * v));
            var w = KernelCheck.Random(rng, g.WeightShape.Aggregate(1L, (p, v) => p * v));
            var b = KernelCheck.Random(rng, g.OutChannels);
            var expected = ReferenceConvTranspose.Compute(g, x, w, b);
            var actual = FromCombinations(new PhaseDecomposition(g), x, w, b);
            // float32 tolerance of the project: |a-b| <= 1e-5 + 1e-4*|b| (both accumulate in double).
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5 + 1e-4 * Math.Abs(expected[i]), $"{KernelCheck.Describe(g)} y[{i}]");
        }
    }

    private static float[] FromCombinations(PhaseDecomposition d, float[] x, float[] w, float[] b)
    {
        var g = d.Geometry;
        int r = g.Rank;
        long inSp = g.Axes.Aggregate(1L, (p, a) => p * a.Input), outSp = g.Axes.Aggregate(1L, (p, a) => p * a.Output);
        long ks = g.Axes.Aggregate(1L, (p, a) => p * a.Kernel), cig = g.InChannelsPerGroup, cog = g.OutChannelsPerGroup;
        var y = new double[g.Batch * g.OutChannels * outSp];
        var q = new long[r];
        foreach (var combo in d.Combinations)
            for (long pix = 0; pix < combo.Pixels; pix++)
            {
                long rem = pix, outFlat = 0, mul = 1;
                for (int a = r - 1; a >= 0; a--)
                {
                    q[a] = rem % combo.Axes[a].Count;
                    rem /= combo.Axes[a].Count;
                }
                for (int a = r - 1; a >= 0; a--)
                {
                    outFlat += (combo.Axes[a].FirstOutput + q[a] * g.Axes[a].Stride) * mul;
                    mul *= g.Axes[a].Output;
                }
                for (long t = 0; t < combo.Taps; t++)
                {
                    long inFlat = 0, imul = 1;
                    bool inside = true;
                    for (int a = r - 1; a >= 0; a--)
                    {
                        long i = combo.Axes[a].InputIndex(q[a], combo.Tap(t, a));
                        inside &= i >= 0 && i < g.Axes[a].Input;
                        inFlat += i * imul;
                        imul *= g.Axes[a].Input;
                    }
                    if (!inside) continue;
                    long k = combo.KernelIndex(t, g.Axes);
                    for (long n = 0; n < g.Batch; n++)
                        for (long grp = 0; grp < g.Group; grp++)
                            for (long ic = 0; ic < cig; ic++)
                                for (long oc = 0; oc < cog; oc++)
                                {
                                    long ci = grp * cig + ic, co = grp * cog + oc;
                                    y[(n * g.OutChannels + co) * outSp + outFlat] +=
                                        x[(n * g.InChannels + ci) * inSp + inFlat] * (double)w[(ci * cog + oc) * ks + k];
                                }
                }
            }
        var result = new float[y.Length];
        for (long i = 0; i < y.Length; i++) result[i] = (float)(y[i] + b[i / outSp % g.OutChannels]);
        return result;
    }

    [Fact]
    public void Combinations_AreRowMajorWithTapsLastAxisFastest()
    {
        var g = KernelCheck.Geo(1, 1, 1, 1, [5, 5], [3, 5], strides: [2, 3]);
        var d = new PhaseDecomposition(g);
        Assert.Equal(6, d.PhaseCount);
        for (int n = 0; n < 6; n++)
        {
            var c = d.Combinations[n];
            Assert.Equal(n, c.Index);
            Assert.Equal(n / 3, c.Axes[0].Residue);
            Assert.Equal(n % 3, c.Axes[1].Residue);
        }
        // Residues (0, 0): taps k0 in {0, 2}, k1 in {0, 3}; flat taps (0,0),(0,3),(2,0),(2,3).
        var c0 = d.Combinations[0];
        Assert.Equal(4, c0.Taps);
        Assert.Equal([0L, 3, 10, 13], Enumerable.Range(0, 4).Select(t => c0.KernelIndex(t, g.Axes)).ToArray());
        Assert.Equal(new AxisTap(3, 1), c0.Tap(1, 1));
        Assert.Equal(new AxisTap(2, 1), c0.Tap(2, 0));
        Assert.Equal(4, d.MaxTaps);
    }

    [Fact]
    public void DilationSharingAFactorWithTheStride_LeavesEmptyPhases()
    {
        // d = 2, s = 4: k*d mod 4 is 0 or 2, so residues 1 and 3 get no tap (bias only).
        var g = KernelCheck.Geo(1, 1, 1, 1, [4], [3], strides: [4], dilations: [2]);
        var axis = new PhaseDecomposition(g).Axes[0];
        Assert.Equal([2, 0, 1, 0], axis.Phases.Select(p => p.TapCount).ToArray());
        Assert.True(axis.Phases[1].IsEmpty);
        Assert.Equal(new AxisTap(2, 1), axis.Phases[0].Taps[1]);
    }

    [Fact]
    public void HostileStride_IsRefusedNamingStrides_AndMaxTapsNeedsNoPhaseTable()
    {
        var g = KernelCheck.Geo(1, 1, 1, 1, [2, 2], [3, 3], strides: [int.MaxValue, 2]);
        var e = Assert.Throws<GeometryException>(() => new PhaseDecomposition(g));
        Assert.Equal("strides", e.Attribute);
        Assert.Equal(2, PhaseDecomposition.MaxTapsOf(g)); // one tap per phase on axis 0, two (k 0 and 2) on axis 1
    }
}
