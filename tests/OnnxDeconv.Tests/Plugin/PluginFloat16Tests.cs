using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.Kernels;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// The plugin's float16 kernel (X, W, B, Y float16; computed in float32, no Cast nodes): in process and through the
/// published .so. References: the scalar ConvTranspose in float32 on the widened float16 values, rounded once to
/// float16, and ONNX Runtime's run of the original float16 model (ORT_DISABLE_ALL; it inserts Casts around a float
/// ConvTranspose). Tolerance: the float16 rule |a-b| &lt;= 2^-8 + 2^-9*|b| (Tolerance.ForType).
/// </summary>
public sealed class PluginFloat16Tests(NativePluginFixture native) : IClassFixture<NativePluginFixture>
{
    private static readonly ConvTransposeAttributes Dcgan = new() { Strides = [2, 2], Pads = [1, 1, 1, 1] };
    private static readonly long[] XShape = [2, 16, 6, 6], WShape = [16, 8, 4, 4];

    /// <summary>ConvTranspose + Relu in float16 (Relu fuses into the plugin's epilogue), its input and its reference.</summary>
    private static (ModelProto Model, TensorValue X, TensorValue Reference, float[] W, float[] B, float[] Xf) HalfDcgan(bool relu = true)
    {
        var rng = new Random(21);
        float[] Round(float[] v) => Array.ConvertAll(v, f => HalfFloats.Round(DataType.Float16, f));
        var w = Round(PluginTestKit.RandomFloats(rng, 16 * 8 * 16));
        var b = Round(PluginTestKit.RandomFloats(rng, 8));
        var x = Round(PluginTestKit.RandomFloats(rng, XShape.Aggregate(1L, (p, d) => p * d)));
        var g = ConvTransposeGeometry.Resolve(Dcgan, XShape, WShape);
        var mb = new ModelBuilder("f16_plugin");
        mb.Input("X", XShape);
        var ct = mb.Node(Ops.ConvTranspose.OpType, ["X", mb.Initializer("W", WShape, w), mb.Initializer("B", [8], b)],
            ConvTransposeNode.ToAttributes(Dcgan), output: relu ? null : "Y");
        if (relu) mb.Node(Ops.Relu.OpType, [ct], output: "Y");
        mb.Output("Y", g.OutputShape);
        var y = ReferenceConvTranspose.Compute(g, x, w, b);
        if (relu) y = Array.ConvertAll(y, v => Math.Max(v, 0f));
        return (HalfModel.Convert(mb.Build(), DataType.Float16), TensorValue.Rounded("X", DataType.Float16, XShape, x),
            TensorValue.Rounded("Y", DataType.Float16, g.OutputShape, y), w, b, x);
    }

    private static void AssertHalfRule(TensorValue expected, TensorValue actual, string what)
    {
        Assert.Equal(DataType.Float16, actual.ElementType);
        var c = OutputComparer.Compare("Y", expected, actual, Tolerance.Default);
        Assert.Equal(new Tolerance(1.0 / 256, 1.0 / 512), c.Tolerance);
        Assert.True(c.Passed, $"{what}: {c.Describe()}");
    }

    [Fact]
    public void Float16Model_PluginTarget_Float16NodeNoCasts_MatchesReferenceAndOriginal()
    {
        var (model, x, reference, _, _, _) = HalfDcgan();
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var node = Assert.Single(rewritten.Graph.Node);
        Assert.Equal(Ops.TransposedConv.OpType, node.OpType); // Relu fused, nothing else (no Cast)
        foreach (var input in node.Input.Skip(1))
            Assert.Equal((int)DataType.Float16, rewritten.Graph.Initializer.Single(t => t.Name == input).DataType);

        var actual = Assert.Single(OrtRunner.RunOnce(rewritten, [x], PluginTestKit.WithPlugin()));
        AssertHalfRule(reference, actual, "plugin vs float32 reference rounded to float16");
        var original = Assert.Single(OrtRunner.RunOnce(model, [x]));
        AssertHalfRule(original, actual, "plugin vs ONNX Runtime's original");
    }

    [Fact]
    public void Float16Plugin_EqualsFloat32PluginOnWidenedValues_RoundedOnce_BitForBit()
    {
        // The float16 kernel is the float32 kernel between two exact conversions and one rounding: nothing else.
        var (model, x, _, w, b, xf) = HalfDcgan();
        var half = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var mb = new ModelBuilder("f32_plugin");
        mb.Input("X", XShape);
        var ct = mb.Node(Ops.ConvTranspose.OpType, ["X", mb.Initializer("W", WShape, w), mb.Initializer("B", [8], b)], ConvTransposeNode.ToAttributes(Dcgan));
        mb.Node(Ops.Relu.OpType, [ct], output: "Y");
        mb.Output("Y", null);
        var single = ConvTransposeToPlugin.RewriteAll(mb.Build()).Model;
        for (int threads = 1; threads <= 2; threads++)
        {
            var y32 = PluginTestKit.RunSingle(single, TensorValue.Float("X", XShape, xf), PluginTestKit.WithPlugin(threads));
            var y16 = Assert.Single(OrtRunner.RunOnce(half, [x], PluginTestKit.WithPlugin(threads))).WidenedFloats();
            Assert.Equal(Array.ConvertAll(y32, v => HalfFloats.Round(DataType.Float16, v)), y16);
        }
    }

    [Fact]
    public void Float16Plugin_SessionGraph_HasNoCastAroundTheOp()
    {
        // ONNX Runtime finds the float16 kernel, so it inserts no Cast (it does for a float-only op or its own ConvTranspose).
        var (model, _, _, _, _, _) = HalfDcgan();
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var path = Path.Combine(Path.GetTempPath(), $"onnxdeconv-f16plugin-{Guid.NewGuid():N}.onnx");
        try
        {
            var options = PluginTestKit.WithPlugin();
            var configure = options.Configure;
            using (new OrtRunner(rewritten, options with { Configure = so => { configure!(so); so.OptimizedModelFilePath = path; } })) { }
            var session = ModelIO.Load(path);
            Assert.DoesNotContain(session.Graph.Node, n => n.OpType == "Cast");
            Assert.Contains(session.Graph.Node, n => n.OpType == Ops.TransposedConv.OpType);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Float16Plugin_WeightsFedAtRunTime_WidenedPerCall_SameResult()
    {
        // W as a graph input is not a constant: the kernel widens it per call instead of once at creation.
        var (model, x, _, _, _, _) = HalfDcgan();
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var expected = Assert.Single(OrtRunner.RunOnce(rewritten, [x], PluginTestKit.WithPlugin()));
        var fed = rewritten.Clone();
        var packed = fed.Graph.Initializer.Single(t => t.Name == fed.Graph.Node[0].Input[1]);
        fed.Graph.Initializer.Remove(packed);
        fed.Graph.Input.Add(ModelBuilder.ValueInfo(packed.Name, DataType.Float16, packed.Dims.ToArray()));
        var actual = Assert.Single(OrtRunner.RunOnce(fed, [x, TensorValue.FromProto(packed)], PluginTestKit.WithPlugin()));
        Assert.Equal(expected.WidenedFloats(), actual.WidenedFloats());
    }

    [Fact]
    public void MixedTypes_Float16XFloat32W_RefusedWithAnError_NotACrash()
    {
        // No kernel takes float16 X with float W: ONNX Runtime says so when the session is created.
        var (model, x, _, _, _, _) = HalfDcgan(relu: false);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var packed = rewritten.Graph.Initializer.Single(t => t.Name == rewritten.Graph.Node[0].Input[1]);
        rewritten.Graph.Initializer.Remove(packed);
        rewritten.Graph.Initializer.Add(Tensors.FromFloats(packed.Name, packed.Dims.ToArray(), Tensors.ToFloats(packed)));
        var e = Assert.ThrowsAny<OnnxRuntimeException>(() => OrtRunner.RunOnce(rewritten, [x], PluginTestKit.WithPlugin()));
        Assert.Contains(Ops.TransposedConv.OpType, e.Message);
    }

    [Fact]
    public void NativeLibrary_Float16Model_BitIdenticalToInProcess()
    {
        var (model, x, reference, _, _, _) = HalfDcgan();
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var inProcess = Assert.Single(OrtRunner.RunOnce(rewritten, [x], PluginTestKit.WithPlugin()));
        var viaSo = Assert.Single(OrtRunner.RunOnce(rewritten, [x],
            new OrtRunOptions { Configure = so => so.RegisterCustomOpLibrary(native.Library) }));
        AssertHalfRule(reference, viaSo, ".so vs reference");
        Assert.Equal(inProcess.WidenedFloats(), viaSo.WidenedFloats());
    }
}
