using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.DemoModels;
using OnnxDeconv.DemoModels.Qdq;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.TestSupport;
using Xunit.Abstractions;

namespace OnnxDeconv.GraphRewrite.Tests.Quantized;

/// <summary>
/// QDQ ConvTranspose sites lowered by the portable target: what ONNX Runtime makes of the result (QLinearConv, no fp32
/// ConvTranspose), that the result equals the original within one quantization step (ORT_DISABLE_ALL through the
/// verifier, and ORT_ENABLE_ALL where the int8 kernels run), and that QDQ patterns outside the rule stay byte-identical.
/// </summary>
public sealed class QdqRewriteTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models() => new() { "dcgan_generator_qdq.onnx", "unet_decoder_block_qdq.onnx", "sr_block_qdq.onnx" };

    private static ModelProto Load(string name) => ModelIO.Load(Path.Combine(RepoPaths.DemoModels, name));

    /// <summary>The U-Net QDQ demo with its ConvTranspose's weight scale turned into a graph input (a run-time value).</summary>
    internal static ModelProto DynamicWeightScaleModel()
    {
        var model = Load("unet_decoder_block_qdq.onnx");
        var ct = model.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType);
        var dqW = model.Graph.Node.Single(n => n.Output.Contains(ct.Input[1]));
        var scale = model.Graph.Initializer.Single(t => t.Name == dqW.Input[1]);
        model.Graph.Initializer.Remove(scale);
        model.Graph.Input.Add(ModelBuilder.ValueInfo(scale.Name, TensorProto.Types.DataType.Float, scale.Dims.ToArray()));
        return model;
    }

    private static OptimizeResult Portable(ModelProto m) => Optimizer.Run(m, new OptimizeOptions { Target = Target.Portable });

    [Theory]
    [MemberData(nameof(Models))]
    public void QdqDemo_Portable_EveryConvTransposeRewrittenAndVerifiedWithinOneStep(string name)
    {
        var original = Load(name);
        var result = Portable(original);
        Assert.All(result.Nodes, n => Assert.True(n.Rewritten, $"{n.Node}: {n.Reason}"));
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);
        // The weights stay int8: no float weight initializer appears.
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.DataType == (int)TensorProto.Types.DataType.Float && t.Dims.Count >= 3);
        foreach (int seed in new[] { 0, 7 })
        {
            var report = Verifier.Verify(ModelSource.FromModel(original), ModelSource.FromModel(result.Model), new VerifyOptions { Seed = seed });
            foreach (var o in report.Outputs) output.WriteLine($"{name} seed {seed} '{o.Name}': {o.Describe()}, {o.StepsOff} one step off; {o.QuantizedRule}");
            Assert.True(report.Passed, string.Join("; ", report.Outputs.Select(o => o.Describe())));
            Assert.All(report.Outputs, o => Assert.NotNull(o.QuantizedRule));
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void QdqDemo_Portable_OrtOptimizedGraphHoldsQLinearConvPerSiteAndNoConvTranspose(string name)
    {
        var original = Load(name);
        var rewritten = Portable(original).Model;
        var ops = OptimizedOps(rewritten);
        var before = OptimizedOps(original);
        output.WriteLine($"{name} original in ORT:  {Summary(before)}");
        output.WriteLine($"{name} rewritten in ORT: {Summary(ops)}");
        int sites = original.Graph.Node.Count(n => n.OpType == Ops.ConvTranspose.OpType);
        int convs = original.Graph.Node.Count(n => n.OpType == Ops.Conv.OpType);
        Assert.DoesNotContain(Ops.ConvTranspose.OpType, ops);
        Assert.DoesNotContain(Ops.Conv.OpType, ops);
        // One QLinearConv per rewritten ConvTranspose, beside the model's own Convs.
        Assert.Equal(sites + convs, ops.Count(o => o == Ops.QLinearConv.OpType));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void QdqDemo_Portable_EqualsOriginalWithinOneStep_WithOrtOptimizationsOn(string name)
    {
        // ORT_ENABLE_ALL: the rewritten model runs QLinearConv (integer accumulation), the original fp32 ConvTranspose.
        var original = Load(name);
        var rewritten = Portable(original).Model;
        var on = new OrtRunOptions { OptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        var steps = QuantizedOutputs.Find(original);
        foreach (ulong seed in new ulong[] { 1, 2 })
        {
            var inputs = DemoInputs.For(original, seed);
            var e = OrtRunner.RunOnce(original, inputs, on);
            var a = OrtRunner.RunOnce(rewritten, inputs, on);
            foreach (var exp in e)
            {
                var act = a.Single(t => t.Name == exp.Name);
                var c = QuantizedOutputs.Judge(OutputComparer.Compare(exp.Name, exp, act, Tolerance.Default), exp, act, steps[exp.Name]);
                output.WriteLine($"{name} seed {seed} '{exp.Name}' (ORT_ENABLE_ALL): {c.Describe()}, {c.StepsOff}/{c.Elements} one step off");
                Assert.True(c.Passed, c.Describe());
            }
        }
    }

    [Fact]
    public void QdqConvTranspose_OutputWithTwoConsumers_LeftByteIdenticalWithReason()
    {
        // The ConvTranspose's float output also feeds a graph output: the single-QuantizeLinear rule does not hold.
        var model = Load("sr_block_qdq.onnx");
        var ct = model.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType);
        var tap = new NodeProto { OpType = Ops.Identity.OpType, Name = "tap" };
        tap.Input.Add(ct.Output[0]);
        tap.Output.Add("float_tap");
        model.Graph.Node.Add(tap);
        model.Graph.Output.Add(ModelBuilder.ValueInfo("float_tap", TensorProto.Types.DataType.Float, null));
        AssertLeftAlone(model, "must feed exactly one QuantizeLinear");
    }

    [Fact]
    public void QdqConvTranspose_DynamicWeightScale_LeftByteIdenticalWithReason()
    {
        // The weight scale is a graph input: it can change at run time, the int8 values cannot be carried over.
        var model = DynamicWeightScaleModel();
        AssertLeftAlone(model, "not a constant float tensor");
    }

    [Fact]
    public void QdqConvTranspose_PerChannelScaleOnAxis0_LeftByteIdenticalWithReason()
    {
        // Scales on axis 0 (input channels) of a ConvTranspose weight are not per output channel: no Conv layout carries them.
        var model = Load("sr_block_qdq.onnx");
        var ct = model.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType);
        var dqW = model.Graph.Node.Single(n => n.Output.Contains(ct.Input[1]));
        dqW.Attribute.Single(a => a.Name == Ops.DequantizeLinear.Axis).I = 0;
        var w = model.Graph.Initializer.Single(t => t.Name == dqW.Input[0]);
        Assert.Equal(w.Dims[0], w.Dims[1]); // square: the scale count fits axis 0 too, so ORT runs it
        AssertLeftAlone(model, "per tensor or per output channel on axis 1");
    }

    private void AssertLeftAlone(ModelProto model, string reason)
    {
        var bytes = ModelIO.Serialize(model);
        var result = Portable(model);
        var node = Assert.Single(result.Nodes);
        output.WriteLine($"{node.Node}: {node.Reason}");
        Assert.False(node.Rewritten);
        Assert.Contains(reason, node.Reason);
        Assert.Equal(bytes, ModelIO.Serialize(result.Model));
        Assert.Equal(bytes, ModelIO.Serialize(model)); // the input is not modified either
    }

    private static List<string> OptimizedOps(ModelProto model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"qdq-opt-{Guid.NewGuid():N}.onnx");
        try
        {
            using (new OrtRunner(model, new OrtRunOptions { OptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, Configure = so => so.OptimizedModelFilePath = path })) { }
            return ModelIO.Load(path).Graph.Node.Select(n => n.OpType).ToList();
        }
        finally { File.Delete(path); }
    }

    private static string Summary(List<string> ops) => string.Join(", ", ops.GroupBy(o => o).Select(g => $"{g.Key} x{g.Count()}"));
}
