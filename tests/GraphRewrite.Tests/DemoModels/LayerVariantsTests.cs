using OnnxDeconv.DemoModels;
using OnnxDeconv.DemoModels.Figures;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.GraphRewrite.Tests.DemoModels;

/// <summary>
/// The standard-op forms measured in docs/how-it-works.md compute the ConvTranspose they stand for: each, run in
/// ONNX Runtime (ORT_DISABLE_ALL), matches the scalar reference within atol 1e-5 + rtol 1e-4 (float32).
/// </summary>
public sealed class LayerVariantsTests
{
    public static TheoryData<long, long, long, long, long, long, long> Layers() => new()
    {
        // cin, cout, height, width, kernel, stride, pad
        { 6, 5, 5, 7, 4, 2, 1 },   // the DCGAN shape, small
        { 4, 3, 4, 4, 2, 2, 0 },   // U-Net k2 s2
        { 3, 2, 3, 5, 6, 3, 2 },   // stride 3, two taps per phase
        { 2, 4, 4, 3, 4, 2, 2 },   // pads equal to K - s
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void LayerVariant_MatchesReference(long cin, long cout, long h, long w, long k, long s, long p)
    {
        var g = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [s, s], Pads = [p, p, p, p] }, [1, cin, h, w], [cin, cout, k, k]);
        var rng = new SplitMix64(7);
        var weights = rng.Uniform(cin * cout * k * k, 0.5f);
        var bias = rng.Uniform(cout, 0.5f);
        var x = TensorValue.Float(LayerVariants.Input, g.InputShape, rng.Uniform(cin * h * w, 1f));
        var expected = ReferenceConvTranspose.Compute(g, x.AsFloats(), weights, bias);

        foreach (ModelProto model in (ModelProto[])[LayerVariants.ConvTranspose(g, weights, bias), LayerVariants.ZeroInsertion(g, weights, bias), LayerVariants.PolyphaseConv(g, weights, bias)])
        {
            var y = Assert.Single(OrtRunner.RunOnce(model, [x]));
            Assert.Equal(g.OutputShape, y.Dims);
            DemoModelRuntimeTests.AssertClose(expected, y.AsFloats(), model.Graph.Name);
        }
    }

    [Fact]
    public void LayerVariants_RejectOutputPadding_WithClearMessage()
    {
        var g = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1], OutputPadding = [1, 1] }, [1, 2, 4, 4], [2, 2, 4, 4]);
        var e = Assert.Throws<ArgumentException>(() => LayerVariants.PolyphaseConv(g, new float[64], new float[2]));
        Assert.Contains("output_padding", e.Message);
    }
}
