using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.Kernels;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.HalfPrecision;

/// <summary>
/// float16 single-node models and their reference. The reference is independent of every rewrite: the scalar
/// ConvTranspose computed in float32 from the float16 values (widened exactly), rounded once to float16 - what
/// ONNX Runtime's CPU does for the original node (it has no float16 ConvTranspose and inserts Casts around the float one).
/// Tolerance: the project's float16 rule, |a-b| &lt;= 2^-8 + 2^-9*|b| (two float16 steps at |b| plus four at magnitude 1; Tolerance.ForType).
/// </summary>
internal static class HalfTestKit
{
    public static readonly Tolerance Float16Tolerance = Tolerance.Default.ForType(DataType.Float16);

    public sealed record HalfCase(ModelProto Model, TensorValue X, TensorValue Reference);

    /// <summary>X ─ ConvTranspose(W[, B]) ─ Y in <paramref name="type"/>, random data rounded to the type, and the reference output.</summary>
    public static HalfCase SingleNode(ConvTransposeAttributes attrs, long[] xShape, long[] wShape, bool bias, int seed,
        DataType type = DataType.Float16, long[]? declaredX = null)
    {
        var rng = new Random(seed);
        var w = Round(type, RandomFloats(rng, wShape.Aggregate(1L, (p, v) => p * v)));
        var g = ConvTransposeGeometry.Resolve(attrs, xShape, wShape);
        var b = bias ? Round(type, RandomFloats(rng, g.OutChannels)) : null;
        var x = Round(type, RandomFloats(rng, xShape.Aggregate(1L, (p, v) => p * v)));
        var model = HalfModel.Convert(Lowering.PortableTestKit.SingleNode(attrs, xShape, wShape, w, b, declaredX: declaredX), type);
        var y = ReferenceConvTranspose.Compute(g, x, w, b ?? []);
        return new HalfCase(model, TensorValue.Rounded("X", type, xShape, x), TensorValue.Rounded("Y", type, g.OutputShape, y));
    }

    public static float[] Round(DataType type, float[] v) => Array.ConvertAll(v, f => HalfFloats.Round(type, f));

    /// <summary>Fails with the worst element when <paramref name="actual"/> is not within the float16 rule of <paramref name="expected"/>.</summary>
    public static void AssertWithinHalfRule(TensorValue expected, TensorValue actual, string what)
    {
        Assert.Equal(expected.ElementType, actual.ElementType);
        var c = OutputComparer.Compare(expected.Name, expected, actual, Tolerance.Default);
        Assert.Equal(Float16Tolerance, c.Tolerance);
        Assert.True(c.Passed, $"{what}: {c.Describe()} (rule {c.Tolerance}, |a-b| <= atol + rtol*|b|)");
    }

    public static IEnumerable<TensorProto> FloatInitializers(ModelProto m) =>
        m.Graph.Initializer.Where(t => t.DataType == (int)DataType.Float);
}
