using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.Rewrites;

public class ConvTransposeToPortableTests
{
    private static (float[] W, float[] B) Weights(long[] wShape, long cout, int seed)
    {
        var rng = new Random(seed);
        return (RandomFloats(rng, wShape.Aggregate(1L, (p, v) => p * v)), RandomFloats(rng, cout));
    }

    [Fact]
    public void WeightsAsGraphInput_LeftAloneWithReason_ModelByteIdentical()
    {
        var attrs = new ConvTransposeAttributes { Strides = [2, 2] };
        var model = SingleNode(attrs, [1, 2, 4, 4], [2, 3, 3, 3], [], null, weightsAsInput: true);
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions());
        var report = Assert.Single(result.Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("graph input", report.Reason);
        Assert.Contains("'W'", report.Reason);
        Assert.False(result.Changed);
        Assert.Equal(before, ModelIO.Serialize(result.Model));
    }

    [Fact]
    public void NothingToRewrite_ModelByteIdentical_NoReports()
    {
        var mb = new ModelBuilder("relu");
        mb.Input("X", [1, 3, 4, 4]);
        mb.Node(Ops.Relu.OpType, ["X"], output: "Y");
        mb.Output("Y", [1, 3, 4, 4]);
        var model = mb.Build();
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions());
        Assert.Empty(result.Nodes);
        Assert.False(result.Changed);
        Assert.Equal(before, ModelIO.Serialize(result.Model));
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    public void PortableOnly_WithATargetOtherThanAuto_IsRefused(Target target)
    {
        var model = SingleNode(new ConvTransposeAttributes(), [1, 1, 3], [1, 1, 2], [1, 2], null);
        var e = Assert.Throws<ArgumentException>(() => Optimizer.Run(model, new OptimizeOptions { Target = target, PortableOnly = true }));
        Assert.Contains(nameof(OptimizeOptions.PortableOnly), e.Message);
    }

    [Fact]
    public void OutputShape_WithDynamicInput_LeftAloneWithReason()
    {
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], OutputShape = [10, 10] };
        var (w, _) = Weights([2, 2, 3, 3], 2, 1);
        var model = SingleNode(attrs, [1, 2, 4, 4], [2, 2, 3, 3], w, null, declaredX: [1, 2, -1, -1]);
        var report = Assert.Single(Optimizer.Run(model, new OptimizeOptions()).Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("output_shape", report.Reason);
    }

    [Fact]
    public void UnequalStrides3D_DynamicInput_OneRewriteHoldsForSeveralSizes()
    {
        // No DepthToSpace in 3D: the interleave reads the phase tensor's shape at run time (Shape/Gather/Mul/Concat).
        var attrs = new ConvTransposeAttributes { Strides = [2, 1, 3], Pads = [1, 0, 2, 0, 1, 1], Group = 2 };
        long[] ws = [2, 2, 3, 2, 4];
        var (w, b) = Weights(ws, 4, 2);
        var model = SingleNode(attrs, [1, 2, 3, 3, 3], ws, w, b, opset: 17, declaredX: [-1, 2, -1, -1, -1]);
        var result = Optimizer.Run(model, new OptimizeOptions());
        var report = Assert.Single(result.Nodes);
        Assert.True(report.Rewritten, report.Reason);
        Assert.Contains(result.Model.Graph.Node, n => n.OpType == Ops.Shape.OpType);
        foreach (long[] xs in new long[][] { [1, 2, 3, 3, 3], [2, 2, 5, 2, 4] })
        {
            var x = TensorValue.Float("X", xs, RandomFloats(new Random((int)xs[2]), xs.Aggregate(1L, (p, v) => p * v)));
            AssertSameOutputs(model, result.Model, [x], $"3D dynamic at [{string.Join(",", xs)}]");
        }
    }

    [Fact]
    public void NonDefaultDomain_LeftAloneWithReason()
    {
        var (w, _) = Weights([1, 1, 2, 2], 1, 3);
        var model = SingleNode(new ConvTransposeAttributes { Strides = [2, 2] }, [1, 1, 3, 3], [1, 1, 2, 2], w, null);
        model.Graph.Node[0].Domain = "com.example";
        model.OpsetImport.Add(new Onnx.OperatorSetIdProto { Domain = "com.example", Version = 1 });
        var report = Assert.Single(Optimizer.Run(model, new OptimizeOptions()).Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("com.example", report.Reason);
    }

    [Fact]
    public void MalformedAttribute_LeftAloneWithReasonNamingIt_NoThrow()
    {
        var (w, _) = Weights([1, 1, 2, 2], 1, 4);
        var model = SingleNode(new ConvTransposeAttributes { Strides = [2, 2] }, [1, 1, 3, 3], [1, 1, 2, 2], w, null);
        model.Graph.Node[0].Attribute.Add(Attributes.Ints(Ops.ConvTranspose.Pads, [1, 1])); // 2 values for 2 axes: needs 4
        var report = Assert.Single(Optimizer.Run(model, new OptimizeOptions()).Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("pads", report.Reason);
    }

    [Fact]
    public void K3S2Pad1_2D_AutoPicksPerPhaseConvs_MatchesReferenceAndOrt()
    {
        // k=3, s=2: phases have 2 and 1 taps per axis, one Conv would be 44% zero taps: Auto runs 4 phase Convs.
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1], OutputPadding = [1, 1] };
        long[] xs = [1, 3, 5, 6], ws = [3, 4, 3, 3];
        var (w, b) = Weights(ws, 4, 5);
        var model = SingleNode(attrs, xs, ws, w, b);
        var result = Optimizer.Run(model, new OptimizeOptions());
        var report = Assert.Single(result.Nodes);
        Assert.True(report.Rewritten, report.Reason);
        Assert.StartsWith("4 phase Convs", report.Lowering);
        Assert.Equal(3L * 4 * 9 * 30, report.MacsBefore);
        Assert.True(report.MacsAfter < report.MacsBefore * 1.5, $"{report.MacsAfter} MACs after");
        AssertNoConvTranspose(result.Model, "k3s2");

        var x = RandomFloats(new Random(6), 90);
        var geometry = ConvTransposeGeometry.Resolve(attrs, xs, ws);
        var reference = TensorValue.Float("Y", geometry.OutputShape, ReferenceConvTranspose.Compute(geometry, x, w, b));
        var actual = OrtRunner.RunOnce(result.Model, [TensorValue.Float("X", xs, x)]).Single();
        AssertClose(reference, actual, "k3s2 vs scalar reference");
        AssertSameOutputs(model, result.Model, [TensorValue.Float("X", xs, x)], "k3s2 vs ORT");
    }

    [Fact]
    public void K4S2_2D_OneConvDepthToSpaceCrdSlice_NoWaste()
    {
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1], Group = 2 };
        long[] xs = [2, 4, 5, 5], ws = [4, 3, 4, 4];
        var (w, b) = Weights(ws, 6, 7);
        var model = SingleNode(attrs, xs, ws, w, b, opset: 13);
        var result = Optimizer.Run(model, new OptimizeOptions());
        var report = Assert.Single(result.Nodes);
        Assert.Equal("polyphase Conv(24ch, k2x2)+DepthToSpace(CRD,2)+Slice", report.Lowering);
        Assert.Equal([Ops.Conv.OpType, Ops.DepthToSpace.OpType, Ops.Slice.OpType], result.Model.Graph.Node.Select(n => n.OpType));
        // W and B were replaced by the rearranged initializers and removed.
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name is "W" or "B");
        AssertSameOutputs(model, result.Model, [TensorValue.Float("X", xs, RandomFloats(new Random(8), 200))], "k4s2 group 2");
    }

    [Fact]
    public void Stride1_BecomesOneDilatedConv_NoInterleave()
    {
        // As in GTCRN: depthwise, dilation (5,1), pads (k-1)*d, output shorter than the input.
        var attrs = new ConvTransposeAttributes { Dilations = [5, 1], Pads = [10, 1, 10, 1], Group = 4 };
        long[] xs = [1, 4, 13, 6], ws = [4, 1, 3, 3];
        var (w, b) = Weights(ws, 4, 9);
        var model = SingleNode(attrs, xs, ws, w, b, opset: 11);
        var result = Optimizer.Run(model, new OptimizeOptions());
        Assert.Equal(Ops.Conv.OpType, Assert.Single(result.Model.Graph.Node).OpType);
        AssertSameOutputs(model, result.Model, [TensorValue.Float("X", xs, RandomFloats(new Random(10), 4 * 13 * 6))], "stride 1 dilated");
    }

    [Fact]
    public void Opset9_UsesSlice1AttributesAndDepthToSpaceDcr_MatchesOrt()
    {
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 0, 0, 1] };
        long[] xs = [1, 2, 4, 3], ws = [2, 3, 2, 2];
        var (w, b) = Weights(ws, 3, 11);
        var model = SingleNode(attrs, xs, ws, w, b, opset: 9);
        var result = Optimizer.Run(model, new OptimizeOptions());
        var slice = Assert.Single(result.Model.Graph.Node, n => n.OpType == Ops.Slice.OpType);
        Assert.Single(slice.Input); // Slice-1: starts/ends/axes are attributes before opset 10
        Assert.Contains(result.Model.Graph.Node, n => n.OpType == Ops.DepthToSpace.OpType && n.Attribute.All(a => a.Name != Ops.DepthToSpace.Mode));
        Assert.Equal(9, result.Model.OpsetImport.Single().Version);
        AssertSameOutputs(model, result.Model, [TensorValue.Float("X", xs, RandomFloats(new Random(12), 24))], "opset 9");
    }

    [Fact]
    public void OutputValueInfo_KeptAndConsumersUntouched()
    {
        var mb = new ModelBuilder("chain", 17);
        mb.Input("X", [1, 2, 3, 3]);
        var (w, _) = Weights([2, 2, 2, 2], 2, 13);
        mb.Initializer("W", [2, 2, 2, 2], w);
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W"], [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2])], output: "up", name: "up");
        mb.Node(Ops.Relu.OpType, ["up"], output: "Y");
        mb.Output("Y", [1, 2, 6, 6]);
        var model = mb.Build();
        model.Graph.ValueInfo.Add(ModelBuilder.ValueInfo("up", Onnx.TensorProto.Types.DataType.Float, [1, 2, 6, 6]));
        var result = Optimizer.Run(model, new OptimizeOptions());
        Assert.True(Assert.Single(result.Nodes).Rewritten);
        Assert.Equal("up", result.Model.Graph.Node.Single(n => n.OpType == Ops.DepthToSpace.OpType).Output[0]);
        Assert.Equal(["up"], result.Model.Graph.Node.Single(n => n.OpType == Ops.Relu.OpType).Input);
        Assert.Contains(result.Model.Graph.ValueInfo, v => v.Name == "up");
        AssertSameOutputs(model, result.Model, [TensorValue.Float("X", [1, 2, 3, 3], RandomFloats(new Random(14), 18))], "chain");
    }

    [Fact]
    public void SharedWeights_KeptWhileAnotherNodeReadsThem()
    {
        var mb = new ModelBuilder("shared", 17);
        mb.Input("X", [1, 1, 3, 3]);
        mb.Initializer("W", [1, 1, 2, 2], [1, 2, 3, 4]);
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W"], [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2])], output: "Y");
        mb.Node(Ops.Identity.OpType, ["W"], output: "Wout");
        mb.Output("Y", null);
        mb.Output("Wout", null);
        var result = Optimizer.Run(mb.Build(), new OptimizeOptions());
        Assert.True(Assert.Single(result.Nodes).Rewritten);
        Assert.Contains(result.Model.Graph.Initializer, t => t.Name == "W");
    }

    [Fact]
    public void TryMatch_ForcedForms_BothValid()
    {
        var (w, _) = Weights([2, 2, 3], 2, 15);
        var model = SingleNode(new ConvTransposeAttributes { Strides = [3], Dilations = [2] }, [1, 2, 5], [2, 2, 3], w, null);
        var index = new GraphIndex(model);
        Assert.True(ConvTransposeToPortable.TryMatch(index, model.Graph.Node[0], PhaseForm.Combined, out var c, out _));
        Assert.True(ConvTransposeToPortable.TryMatch(index, model.Graph.Node[0], PhaseForm.PerPhase, out var p, out _));
        Assert.Equal(PhaseForm.Combined, c!.Choice.Form);
        Assert.Equal(PhaseForm.PerPhase, p!.Choice.Form);
        Assert.Equal(InterleaveForm.ReshapeTranspose, p.Choice.Interleave);
    }

    [Fact]
    public void LatentOneByOne_StrideTakenAsKernel_ExactMacs()
    {
        // DCGAN's first layer: 1x1 latent, k4 s1 p0. As a stride-1 Conv it would be 16x16 taps over padding; with
        // stride = K every phase has one tap: Conv 1x1 with Cout*16 channels + DepthToSpace(4), exactly the useful MACs.
        var attrs = new ConvTransposeAttributes { Strides = [1, 1] };
        long[] xs = [2, 8, 1, 1], ws = [8, 5, 4, 4];
        var (w, b) = Weights(ws, 5, 16);
        var model = SingleNode(attrs, xs, ws, w, b, opset: 17);
        var report = Assert.Single(Optimizer.Run(model, new OptimizeOptions()).Nodes);
        Assert.StartsWith("polyphase Conv(80ch, k1x1)+DepthToSpace(CRD,4)", report.Lowering);
        Assert.Contains("stride taken as the kernel size", report.Lowering);
        Assert.Equal(report.MacsBefore, report.MacsAfter);
        AssertSameOutputs(model, Optimizer.Run(model, new OptimizeOptions()).Model,
            [TensorValue.Float("X", xs, RandomFloats(new Random(17), 16))], "1x1 latent");
    }

    [Fact]
    public void IntermediateWithoutValueInfo_MacsAtInferredShape_RewriteStaysShapeAgnostic()
    {
        // X[1,8,1,1] -> ConvTranspose k4 -> Relu -> ConvTranspose k4 s2 p1: the second input has no value_info; its
        // shape [1,5,4,4] is inferred for the report only, the lowering stays valid for any size (DepthToSpace).
        var mb = new ModelBuilder("chain", 17);
        mb.Input("X", [1, 8, 1, 1]);
        var rng = new Random(18);
        mb.Initializer("W1", [8, 5, 4, 4], RandomFloats(rng, 8 * 5 * 16));
        mb.Initializer("W2", [5, 3, 4, 4], RandomFloats(rng, 5 * 3 * 16));
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W1"], output: "h", name: "up1");
        mb.Node(Ops.Relu.OpType, ["h"], output: "r");
        mb.Node(Ops.ConvTranspose.OpType, ["r", "W2"],
            [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2]), Attributes.Ints(Ops.ConvTranspose.Pads, [1, 1, 1, 1])], output: "Y", name: "up2");
        mb.Output("Y", null);
        var model = mb.Build();
        var result = Optimizer.Run(model, new OptimizeOptions());
        var second = result.Nodes.Single(n => n.Node.StartsWith("up2", StringComparison.Ordinal));
        Assert.True(second.Rewritten, second.Reason);
        Assert.Contains("inferred input shape [1,5,4,4]", second.Lowering);
        Assert.Equal(5L * 3 * 16 * 16, second.MacsBefore);
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.Reshape.OpType); // no size baked in
        AssertSameOutputs(model, result.Model, [TensorValue.Float("X", [1, 8, 1, 1], RandomFloats(rng, 8))], "chain with inferred shapes");
    }
}
