using OnnxDeconv.Geometry;
using OnnxDeconv.Plan;

namespace OnnxDeconv.GraphRewrite.Tests.Lowering;

public class TransposedConvPlanTests
{
    private static TransposedConvPlan Plan1D(long input, long k, long s, long d = 1, long pb = 0, long pe = 0, long op = 0)
    {
        var g = ConvTransposeGeometry.Resolve(
            new ConvTransposeAttributes { Strides = [s], Dilations = [d], Pads = [pb, pe], OutputPadding = [op] }, [1, 1, input], [1, 1, k]);
        return TransposedConvPlanBuilder.Build(g, hasBias: false, padsFromOutputShape: false);
    }

    [Fact]
    public void K4S2_PhasesEqual_TwoTapsEach()
    {
        var a = Plan1D(5, 4, 2).Axes[0];
        Assert.Equal([2, 2], a.Phases.Select(p => p.TapCount));
        // phase 0: k=0 (offset 0), k=2 (offset 1); phase 1: k=1 (offset 0), k=3 (offset 1)
        Assert.Equal([0L, 2L], a.Phases[0].Taps.Select(t => t.K));
        Assert.Equal([0L, 1L], a.Phases[0].Taps.Select(t => t.Offset));
        Assert.Equal([1L, 3L], a.Phases[1].Taps.Select(t => t.K));
        Assert.True(Plan1D(5, 4, 2).PhasesEqual);
        Assert.Equal(2, a.CombinedLength);
    }

    [Fact]
    public void K3S2_PhasesUnequal_TwoAndOneTaps()
    {
        var plan = Plan1D(5, 3, 2, pb: 1, pe: 1, op: 1);
        var a = plan.Axes[0];
        Assert.Equal([2, 1], a.Phases.Select(p => p.TapCount));
        Assert.False(plan.PhasesEqual);
        Assert.Equal(2, a.CombinedLength);
        // One Conv computes 2 phases x 2 taps for 3 useful taps; per-phase Convs compute exactly 3.
        Assert.Equal(4 * a.Rows(), plan.CombinedMacs);
        Assert.Equal(3 * a.Rows(), plan.PerPhaseMacs);
    }

    [Fact]
    public void DilationSharingFactorWithStride_LeavesEmptyPhase()
    {
        // d=2, s=2: k*d is always even, so phase 1 has no taps (only bias reaches those outputs).
        var a = Plan1D(4, 3, 2, d: 2).Axes[0];
        Assert.Equal(3, a.Phases[0].TapCount);
        Assert.True(a.Phases[1].IsEmpty);
        Assert.Equal(1, a.Phases[1].Length);
    }

    [Fact]
    public void DilationCoprimeWithStride_PhaseTapsAreDilated()
    {
        // d=3, s=2: phase 0 taps k=0,2 at offsets 0,3; phase 1 taps k=1,3 at offsets 1,4 -> each phase is a dilation-3 Conv.
        var a = Plan1D(6, 4, 2, d: 3).Axes[0];
        Assert.Equal([0L, 3L], a.Phases[0].Taps.Select(t => t.Offset));
        Assert.Equal([1L, 4L], a.Phases[1].Taps.Select(t => t.Offset));
        Assert.Equal(3, a.Phases[0].Dilation);
        Assert.Equal(2, a.Phases[0].Length);
        Assert.Equal(1, a.CombinedDilation);
        Assert.Equal(5, a.CombinedLength);
    }

    [Fact]
    public void Stride1_OnePhase_DilatedKernel()
    {
        var plan = Plan1D(13, 3, 1, d: 5, pb: 10, pe: 10);
        var a = plan.Axes[0];
        Assert.Equal(1, plan.PhaseCount);
        Assert.Equal(5, a.CombinedDilation);
        Assert.Equal(3, a.CombinedLength);
        Assert.Equal(0, a.CombinedPadBegin);
        Assert.Equal(0, a.CombinedPadEnd);
        Assert.Equal(0, a.CropBegin);
        Assert.Equal(0, a.CropEnd);
        Assert.Equal(3, a.Rows()); // output 13 - 10 = 3 rows, not 13: cropped rows are never computed
    }

    [Theory]
    [InlineData(5, 3, 2, 1, 0, 0, 0)]
    [InlineData(7, 4, 2, 1, 1, 2, 1)]
    [InlineData(3, 5, 3, 2, 4, 0, 2)]
    [InlineData(6, 2, 3, 1, 7, 5, 0)]
    [InlineData(4, 3, 2, 3, 0, 9, 1)]
    public void CropAndPads_IndependentOfInputLength_AndCoverTheOutput(long input, long k, long s, long d, long pb, long pe, long op)
    {
        var a = Plan1D(input, k, s, d, pb, pe, op).Axes[0];
        var b = Plan1D(input + 5, k, s, d, pb, pe, op).Axes[0];
        Assert.Equal((a.RowStart, a.ExtraEnd, a.CropBegin, a.CropEnd, a.CombinedPadBegin), (b.RowStart, b.ExtraEnd, b.CropBegin, b.CropEnd, b.CombinedPadBegin));
        Assert.True(a.CropBegin >= 0 && a.CropEnd >= 0);
        Assert.Equal(a.Geometry.Output, s * a.Rows() - a.CropBegin - a.CropEnd);
        Assert.All(a.Phases, p => Assert.True(p.ConvPadBegin(a) >= 0 && p.ConvPadEnd(a) >= 0, $"phase {p.Residue} pads"));
    }

    [Fact]
    public void TapsOfAllPhases_CoverEveryKernelIndexOnce()
    {
        foreach (var (k, s, d) in new[] { (5L, 3L, 2L), (4L, 4L, 4L), (3L, 1L, 1L), (7L, 2L, 3L) })
        {
            var a = Plan1D(4, k, s, d).Axes[0];
            Assert.Equal(Enumerable.Range(0, (int)k).Select(i => (long)i), a.Phases.SelectMany(p => p.Taps).Select(t => t.K).Order());
            Assert.All(a.Phases.SelectMany(p => p.Taps.Select(t => (p.Residue, t))),
                x => Assert.Equal(x.t.K * d, x.t.Offset * s + x.Residue));
        }
    }

    [Fact]
    public void PhaseCombinations_2D_RowMajorCount()
    {
        var g = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 3] }, [1, 1, 3, 3], [1, 1, 3, 3]);
        var plan = TransposedConvPlanBuilder.Build(g, true, false);
        var combos = plan.PhaseCombinations().ToList();
        Assert.Equal(6, combos.Count);
        Assert.Equal([(0L, 0L), (0L, 1L), (0L, 2L), (1L, 0L), (1L, 1L), (1L, 2L)], combos.Select(c => (c[0].Residue, c[1].Residue)));
        Assert.Equal(9L * 9, plan.UsefulMacs);
    }
}
