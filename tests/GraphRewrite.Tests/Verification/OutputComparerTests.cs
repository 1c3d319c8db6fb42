using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.Verification;

// Tolerance under test: |a-b| <= atol + rtol*|b| with the float32 defaults atol 1e-5, rtol 1e-4.
public class OutputComparerTests
{
    private static TensorValue T(params float[] v) => TensorValue.Float("y", [1, v.Length], v);

    [Fact]
    public void Compare_IdenticalTensors_PassWithZeroError()
    {
        var c = OutputComparer.Compare("y", T(1, 2, 3), T(1, 2, 3), Tolerance.Default);
        Assert.True(c.Passed);
        Assert.Equal(0, c.MaxAbsError);
        Assert.Equal(0, c.Mismatches);
    }

    [Fact]
    public void Compare_ErrorJustInsideTolerance_Passes_JustOutside_FailsAtWorstIndex()
    {
        // allowed at b=100: 1e-5 + 1e-4*100 = 0.01001
        Assert.True(OutputComparer.Compare("y", T(0, 100), T(0, 100.0099f), Tolerance.Default).Passed);
        var c = OutputComparer.Compare("y", T(0, 100, 5), T(0, 100.0102f, 5), Tolerance.Default);
        Assert.False(c.Passed);
        Assert.Equal(1, c.Mismatches);
        Assert.Equal(new long[] { 0, 1 }, c.WorstIndex);
        Assert.Equal(100.0102, c.WorstActual!.Value, 3);
        Assert.InRange(c.MaxRelError, 1.0e-4, 1.1e-4);
    }

    [Fact]
    public void Compare_WorstIndex_IsTheElementUsingMostTolerance_NotTheLargestAbsoluteError()
    {
        // abs error 0.005 at b=100 is within tolerance; 0.001 at b=0 is 100x over it.
        var c = OutputComparer.Compare("y", T(100, 0), T(100.005f, 0.001f), Tolerance.Default);
        Assert.Equal(new long[] { 0, 1 }, c.WorstIndex);
    }

    [Fact]
    public void Compare_NaN_Fails_EvenWhenBothSidesAreNaN()
    {
        var c = OutputComparer.Compare("y", T(1, float.NaN), T(1, float.NaN), Tolerance.Default);
        Assert.False(c.Passed);
        Assert.Contains("NaN", c.Problem);
    }

    [Fact]
    public void Compare_EqualInfinities_Pass()
    {
        Assert.True(OutputComparer.Compare("y", T(float.PositiveInfinity), T(float.PositiveInfinity), Tolerance.Default).Passed);
        Assert.False(OutputComparer.Compare("y", T(float.PositiveInfinity), T(float.NegativeInfinity), Tolerance.Default).Passed);
    }

    [Fact]
    public void Compare_ShapeMismatch_FailsAndSaysSo()
    {
        var c = OutputComparer.Compare("y", TensorValue.Float("y", [2, 2], [1, 2, 3, 4]), TensorValue.Float("y", [4, 1], [1, 2, 3, 4]), Tolerance.Default);
        Assert.False(c.Passed);
        Assert.Contains("shape mismatch", c.Problem);
    }

    [Fact]
    public void Compare_TypeMismatch_Fails()
    {
        var c = OutputComparer.Compare("y", T(1, 2), new TensorValue("y", DataType.Int64, [1, 2], new long[] { 1, 2 }), Tolerance.Default);
        Assert.False(c.Passed);
        Assert.Contains("element type", c.Problem);
    }

    [Fact]
    public void Compare_MissingActual_Fails()
    {
        Assert.False(OutputComparer.Compare("y", T(1), null, Tolerance.Default).Passed);
    }

    [Fact]
    public void Compare_CustomTolerance_IsHonoured()
    {
        Assert.True(OutputComparer.Compare("y", T(1), T(1.05f), new Tolerance(0.1, 0)).Passed);
        Assert.False(OutputComparer.Compare("y", T(1), T(1.05f), new Tolerance(0.01, 0.01)).Passed);
    }

    [Fact]
    public void ShapeOverrides_Parse_ReadsNamesAndDims_RejectsMalformed()
    {
        var s = ShapeOverrides.Parse(["latent=1,4,32,32", "x=2"]);
        Assert.Equal(new long[] { 1, 4, 32, 32 }, s["latent"]);
        Assert.Equal(new long[] { 2 }, s["x"]);
        Assert.Throws<VerificationInputException>(() => ShapeOverrides.Parse(["latent"]));
        Assert.Throws<VerificationInputException>(() => ShapeOverrides.Parse(["latent=1,-4"]));
        Assert.Throws<VerificationInputException>(() => ShapeOverrides.Parse(["a=1", "a=2"]));
    }

    [Fact]
    public void ResolveShape_MissingSymbolicDim_NamesInputDimAndExample()
    {
        var e = Assert.Throws<VerificationInputException>(() => InputGenerator.ResolveShape("latent", [1, 4, -1, -1], ["", "", "height", "width"], null));
        Assert.Contains("'latent'", e.Message);
        Assert.Contains("dim 2 ('height')", e.Message);
        Assert.Contains("--shape latent=", e.Message);
    }

    [Fact]
    public void ResolveShape_GivenShapeConflictingWithFixedDim_IsRejected()
    {
        var e = Assert.Throws<VerificationInputException>(() => InputGenerator.ResolveShape("x", [1, 4, -1], ["", "", "L"], [1, 3, 8]));
        Assert.Contains("dim 1 is fixed to 4", e.Message);
        Assert.Equal(new long[] { 1, 4, 8 }, InputGenerator.ResolveShape("x", [1, 4, -1], ["", "", "L"], [1, 4, 8]));
    }
}
