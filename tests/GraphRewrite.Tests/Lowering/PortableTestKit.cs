using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.GraphRewrite.Tests.Lowering;

/// <summary>Shared helpers for the portable-lowering tests: single-node models, seeded data, tolerance checks.</summary>
internal static class PortableTestKit
{
    // float32 tolerance of the project: |a-b| <= Atol + Rtol*|b|.
    public const double Atol = 1e-5;
    public const double Rtol = 1e-4;

    public static float[] RandomFloats(Random rng, long count)
    {
        var a = new float[count];
        for (long i = 0; i < count; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    /// <summary>X ─ ConvTranspose(W[, B]) ─ Y with W/B as initializers; a null entry in <paramref name="declaredX"/> dims means symbolic.</summary>
    public static ModelProto SingleNode(ConvTransposeAttributes attrs, long[] xShape, long[] wShape, float[] w, float[]? b,
        long opset = 22, long[]? declaredX = null, bool weightsAsInput = false)
    {
        var mb = new ModelBuilder("convtranspose", opset, irVersion: opset >= 13 ? 8 : 5);
        mb.Input("X", declaredX ?? xShape);
        string wName = weightsAsInput ? mb.Input("W", wShape) : mb.Initializer("W", wShape, w);
        var inputs = new List<string> { "X", wName };
        if (b is not null) inputs.Add(mb.Initializer("B", [b.Length], b));
        mb.Node(Ops.ConvTranspose.OpType, inputs, ConvTransposeNode.ToAttributes(attrs), output: "Y", name: "deconv");
        mb.Output("Y", null);
        return mb.Build();
    }

    /// <summary>Asserts |a-b| <= Atol + Rtol*|b| elementwise and equal shapes; the message names the worst element.</summary>
    public static void AssertClose(TensorValue expected, TensorValue actual, string what)
    {
        Assert.True(expected.Dims.SequenceEqual(actual.Dims),
            $"{what}: shape [{string.Join(",", actual.Dims)}] differs from expected [{string.Join(",", expected.Dims)}]");
        var e = expected.AsFloats();
        var a = actual.AsFloats();
        double worst = 0; int at = -1;
        for (int i = 0; i < e.Length; i++)
        {
            double excess = Math.Abs(a[i] - e[i]) - (Atol + Rtol * Math.Abs(e[i]));
            if (excess > worst || (float.IsNaN(a[i]) != float.IsNaN(e[i]))) { worst = Math.Max(excess, double.Epsilon); at = i; }
        }
        Assert.True(at < 0, at < 0 ? "" : $"{what}: element {at} is {a[at]}, expected {e[at]} (|a-b| > {Atol} + {Rtol}*|b|)");
    }

    public static void AssertNoConvTranspose(ModelProto model, string what) =>
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);

    /// <summary>Runs both models with ORT_DISABLE_ALL on the same inputs and compares every output by name.</summary>
    public static void AssertSameOutputs(ModelProto original, ModelProto rewritten, IReadOnlyList<TensorValue> inputs, string what)
    {
        var expected = OrtRunner.RunOnce(original, inputs);
        var actual = OrtRunner.RunOnce(rewritten, inputs);
        Assert.Equal(expected.Count, actual.Count);
        foreach (var e in expected)
            AssertClose(e, actual.Single(a => a.Name == e.Name), $"{what}, output '{e.Name}'");
    }
}
