using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>Graph bookkeeping of ConvTransposeToPlugin: what is removed, kept, fused, and the results still match ORT.</summary>
public sealed class PluginRewriteGraphTests
{
    private static readonly ConvTransposeAttributes Attrs = new() { Strides = [2], Pads = [1, 0] };

    [Fact]
    public void WeightsFromConstantNode_ConstantRemoved_IntermediateGraphOutputNotFused()
    {
        var rng = new Random(5);
        var mb = new ModelBuilder("graph");
        mb.Input("X", [1, 3, 6]);
        var w = Tensors.FromFloats("w_value", [3, 2, 3], PluginTestKit.RandomFloats(rng, 18));
        mb.Node(Ops.Constant.OpType, [], [Attributes.Tensor(Ops.Constant.Value, w)], output: "Wc");
        var ct = mb.Node(Ops.ConvTranspose.OpType, ["X", "Wc"], ConvTransposeNode.ToAttributes(Attrs), output: "ct");
        mb.Node(Ops.Relu.OpType, [ct], output: "Y");
        long[] yShape = ConvTransposeGeometry.Resolve(Attrs, [1, 3, 6], [3, 2, 3]).OutputShape;
        mb.Output("ct", yShape);   // the intermediate is a graph output: Relu must stay separate
        mb.Output("Y", yShape);
        var model = mb.Build();
        var x = TensorValue.Float("X", [1, 3, 6], PluginTestKit.RandomFloats(rng, 18));
        var before = OrtRunner.RunOnce(model, [x]);

        var rewritten = model.Clone();
        var node = rewritten.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType);
        Assert.True(ConvTransposeToPlugin.TryRewrite(rewritten, node, out var report), report.Reason);
        Assert.Equal(ConvTransposeToPlugin.PatternName, report.Pattern);
        Assert.DoesNotContain(rewritten.Graph.Node, n => n.OpType == Ops.Constant.OpType);
        Assert.Contains(rewritten.Graph.Node, n => n.OpType == Ops.Relu.OpType);
        var after = OrtRunner.RunOnce(rewritten, [x], PluginTestKit.WithPlugin());
        for (int i = 0; i < before.Count; i++) PluginTestKit.AssertClose(before[i].AsFloats(), after[i].AsFloats(), before[i].Name);
    }

    [Fact]
    public void SharedWeights_AreKeptForTheOtherReader_AndBothNodesRewritten()
    {
        var rng = new Random(6);
        var mb = new ModelBuilder("shared");
        mb.Input("X", [1, 3, 5]);
        mb.Initializer("W", [3, 2, 3], PluginTestKit.RandomFloats(rng, 18));
        mb.Initializer("B", [2], PluginTestKit.RandomFloats(rng, 2));
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"], ConvTransposeNode.ToAttributes(Attrs), output: "Y1");
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W"], ConvTransposeNode.ToAttributes(Attrs with { Pads = null, Strides = [3] }), output: "Y2");
        mb.Output("Y1", null);
        mb.Output("Y2", null);
        var model = mb.Build();
        var x = TensorValue.Float("X", [1, 3, 5], PluginTestKit.RandomFloats(rng, 15));
        var before = OrtRunner.RunOnce(model, [x]);

        var rewritten = model.Clone();
        var first = rewritten.Graph.Node[0];
        Assert.True(ConvTransposeToPlugin.TryRewrite(rewritten, first, out _));
        Assert.Contains(rewritten.Graph.Initializer, t => t.Name == "W");   // still read by the second node
        var result = ConvTransposeToPlugin.RewriteAll(rewritten);
        Assert.True(Assert.Single(result.Nodes).Rewritten);
        Assert.DoesNotContain(rewritten.Graph.Initializer, t => t.Name == "W");
        Assert.Contains(rewritten.Graph.Initializer, t => t.Name == "B");
        Assert.Equal(2, PluginTestKit.Count(rewritten, Ops.TransposedConv.OpType));
        Assert.False(OnnxDeconvSessionOptions.UsesPlugin(model));
        Assert.Null(OnnxDeconvSessionOptions.ConfigureFor(model));
        Assert.True(OnnxDeconvSessionOptions.UsesPlugin(rewritten));
        Assert.Single(rewritten.OpsetImport, o => o.Domain == Ops.TransposedConv.Domain);
        var after = OrtRunner.RunOnce(rewritten, [x], new OrtRunOptions { Configure = OnnxDeconvSessionOptions.ConfigureFor(rewritten) });
        for (int i = 0; i < before.Count; i++) PluginTestKit.AssertClose(before[i].AsFloats(), after[i].AsFloats(), before[i].Name);
    }

    [Fact]
    public void DoubleModel_IsLeftWithReason()
    {
        var mb = new ModelBuilder("f64");
        mb.Input("X", [1, 3, 4], TensorProto.Types.DataType.Double);
        var w = new TensorValue("W", TensorProto.Types.DataType.Double, [3, 2, 3], new double[18]).ToProto();
        mb.Graph.Initializer.Add(w);
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W"], ConvTransposeNode.ToAttributes(Attrs), output: "Y");
        mb.Output("Y", null, TensorProto.Types.DataType.Double);
        var model = mb.Build();
        Assert.False(ConvTransposeToPlugin.TryRewrite(model, model.Graph.Node[0], out var report));
        Assert.Contains("float32", report.Reason);
    }

    [Fact]
    public void OutputShapeWithDynamicInput_IsLeftWithReason()
    {
        var mb = new ModelBuilder("dyn");
        mb.Input("X", [1, 3, -1]);
        mb.Initializer("W", [3, 2, 3], new float[18]);
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W"], ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2], OutputShape = [12] }), output: "Y");
        mb.Output("Y", null);
        var model = mb.Build();
        Assert.False(ConvTransposeToPlugin.TryRewrite(model, model.Graph.Node[0], out var report));
        Assert.Contains("output_shape", report.Reason);
        Assert.Equal(0, PluginTestKit.Count(model, Ops.TransposedConv.OpType));
    }
}
