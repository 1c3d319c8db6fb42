using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.TestSupport;

/// <summary>Models whose normalization amplifies rounding noise, as style-transfer decoders do (for the noise-floor rule).</summary>
public static class AmplifyingModels
{
    /// <summary>
    /// X[1,8,16,16] -> ConvTranspose "up" (k3 s2 p1 op1, weights ~0.02, bias 50) -> InstanceNormalization -> Y[1,8,32,32]:
    /// the ConvTranspose output is 50 plus a spread of ~0.1, so its last-bit differences (ulp(50) = 3.8e-6) become
    /// ~2e-4 after the normalization divides by that spread: any exact rewrite misses 1e-5 + 1e-4*|b| somewhere.
    /// </summary>
    public static ModelProto Decoder()
    {
        var b = new ModelBuilder("decoder");
        b.Input("X", [1, 8, 16, 16]);
        var rng = new Random(11);
        b.Initializer("W", [8, 8, 3, 3], Enumerable.Range(0, 8 * 8 * 9).Select(_ => (float)(rng.NextDouble() * 2 - 1) * 0.02f).ToArray());
        b.Initializer("B", [8], Enumerable.Repeat(50f, 8).ToArray());
        b.Initializer("scale", [8], Enumerable.Repeat(1f, 8).ToArray());
        b.Initializer("shift", [8], new float[8]);
        var ct = b.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"],
        [
            Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2]), Attributes.Ints(Ops.ConvTranspose.Pads, [1, 1, 1, 1]),
            Attributes.Ints(Ops.ConvTranspose.OutputPadding, [1, 1]),
        ], name: "up");
        b.Node("InstanceNormalization", [ct, "scale", "shift"], output: "Y");
        b.Output("Y", [1, 8, 32, 32]);
        return b.Build();
    }
}
