using OnnxDeconv.Geometry;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Tests;

/// <summary>
/// The scalar reference on cases small enough to work out by hand from y[o] = sum_{i*s + k*d == o + pb} x[i]*w[k] + b.
/// Expected values are exact small integers or halves, compared exactly.
/// </summary>
public sealed class ReferenceConvTransposeTests
{
    private static float[] Run(ConvTransposeAttributes a, long[] xShape, float[] x, long[] wShape, float[] w, float[]? b, long[] expectedShape)
    {
        var g = ConvTransposeGeometry.Resolve(a, xShape, wShape);
        Assert.Equal(expectedShape, g.OutputShape);
        return ReferenceConvTranspose.Compute(g, x, w, b ?? []);
    }

    [Fact]
    public void Reference_1D_Stride2_OverlapsAdd()
    {
        // x=[1,2], w=[1,2,3], s=2: o=0:1*1, o=1:1*2, o=2:1*3+2*1, o=3:2*2, o=4:2*3.
        var y = Run(new() { Strides = [2] }, [1, 1, 2], [1, 2], [1, 1, 3], [1, 2, 3], null, [1, 1, 5]);
        Assert.Equal([1f, 2, 5, 4, 6], y);
    }

    [Fact]
    public void Reference_1D_AsymmetricPadsAndOutputPadding_CropAndExtend()
    {
        // Full output [1,2,5,4,6]; pads [1,0] drop the first element, output_padding 1 appends one (only bias there).
        var y = Run(new() { Strides = [2], Pads = [1, 0], OutputPadding = [1] }, [1, 1, 2], [1, 2], [1, 1, 3], [1, 2, 3], [0.5f], [1, 1, 5]);
        Assert.Equal([2.5f, 5.5f, 4.5f, 6.5f, 0.5f], y);
    }

    [Fact]
    public void Reference_1D_Dilation_SpreadsKernelTaps()
    {
        // x=[1,2], w=[1,2], d=2: o = i + 2k -> o0: 1*1, o1: 2*1, o2: 1*2, o3: 2*2.
        var y = Run(new() { Dilations = [2] }, [1, 1, 2], [1, 2], [1, 1, 2], [1, 2], null, [1, 1, 4]);
        Assert.Equal([1f, 2, 2, 4], y);
    }

    [Fact]
    public void Reference_2D_Kernel2Stride2_2x2Gives4x4_AndPadding1Gives2x2()
    {
        float[] x = [1, 2, 3, 4];
        float[] ones = [1, 1, 1, 1];
        // Each input pixel becomes a 2x2 block: no overlap, no gap.
        var y = Run(new() { Strides = [2, 2] }, [1, 1, 2, 2], x, [1, 1, 2, 2], ones, null, [1, 1, 4, 4]);
        Assert.Equal([1f, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4], y);
        // padding 1 on every side removes the outer ring: the centre 2x2 is one element of each block.
        var yp = Run(new() { Strides = [2, 2], Pads = [1, 1, 1, 1] }, [1, 1, 2, 2], x, [1, 1, 2, 2], ones, null, [1, 1, 2, 2]);
        Assert.Equal([1f, 2, 3, 4], yp);
    }

    [Fact]
    public void Reference_Groups_DoNotMixChannels()
    {
        // 2 groups, 1 in/1 out channel each: y0 only sees x0 with w0, y1 only x1 with w1.
        var y = Run(new() { Group = 2 }, [1, 2, 1], [1, 2], [2, 1, 2], [1, 1, 10, 10], [0, 0.5f], [1, 2, 2]);
        Assert.Equal([1f, 1, 20.5f, 20.5f], y);
    }

    [Fact]
    public void Reference_NoGroups_SumsOverInputChannels()
    {
        // Cin=2, Cout=1, 1x1: y = 1*1 + 2*3.
        var y = Run(new(), [1, 2, 1], [1, 2], [2, 1, 1], [1, 3], null, [1, 1, 1]);
        Assert.Equal([7f], y);
    }

    [Fact]
    public void Reference_SameUpperWithNegativeTotalPadding_ReturnsFullOutput()
    {
        // k=1, s=4: SAME would ask for 12 outputs, ONNX Runtime (which we follow) returns the uncropped 9.
        var y = Run(new() { Strides = [4], AutoPad = AutoPad.SameUpper }, [1, 1, 3], [1, 2, 3], [1, 1, 1], [1], null, [1, 1, 9]);
        Assert.Equal([1f, 0, 0, 0, 2, 0, 0, 0, 3], y);
    }

    [Fact]
    public void Reference_SameUpperOddTotal_PutsTheExtraPixelAtTheEnd()
    {
        // x=[1,2,3], w=[1,1,1], s=2, d=2: full [1,0,3,0,6,0,5,0,3]; SAME wants 6, total 3 -> pads [1,2].
        var y = Run(new() { Strides = [2], Dilations = [2], AutoPad = AutoPad.SameUpper }, [1, 1, 3], [1, 2, 3], [1, 1, 3], [1, 1, 1], null, [1, 1, 6]);
        Assert.Equal([0f, 3, 0, 6, 0, 5], y);
        var yl = Run(new() { Strides = [2], Dilations = [2], AutoPad = AutoPad.SameLower }, [1, 1, 3], [1, 2, 3], [1, 1, 3], [1, 1, 1], null, [1, 1, 6]);
        Assert.Equal([3f, 0, 6, 0, 5, 0], yl);
    }

    [Fact]
    public void Reference_WrongBufferSizes_AreRejected()
    {
        var g = ConvTransposeGeometry.Resolve(new(), [1, 1, 2], [1, 1, 3]);
        Assert.Throws<ArgumentException>(() => ReferenceConvTranspose.Compute(g, new float[3], new float[3], []));
        Assert.Throws<ArgumentException>(() => ReferenceConvTranspose.Compute(g, new float[2], new float[2], []));
        Assert.Throws<ArgumentException>(() => ReferenceConvTranspose.Compute(g, new float[2], new float[3], new float[2]));
    }
}
