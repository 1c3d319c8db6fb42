using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.GraphRewrite.Tests.Quantized;

/// <summary>The verifier's rule for quantized outputs: within one step, at most 1% of elements one step off; read from the model's QuantizeLinear.</summary>
public sealed class QuantizedRuleTests
{
    private static readonly QuantizedStep Step = new(0.5, 0.5, "q");

    private static OutputComparison Judge(float[] expected, float[] actual)
    {
        var e = TensorValue.Float("y", [expected.Length], expected);
        var a = TensorValue.Float("y", [actual.Length], actual);
        return QuantizedOutputs.Judge(OutputComparer.Compare("y", e, a, Tolerance.Default), e, a, Step);
    }

    private static float[] Steps(int n) => Enumerable.Range(0, n).Select(i => i * 0.5f).ToArray();

    [Fact]
    public void OneStepOff_OnOnePercent_Passes()
    {
        var e = Steps(200);
        var a = (float[])e.Clone();
        a[3] += 0.5f; a[150] -= 0.5f; // 2/200 = 1%
        var c = Judge(e, a);
        Assert.True(c.Passed, c.Describe());
        Assert.Equal(2, c.StepsOff);
        Assert.Contains("within one quantization step", c.QuantizedRule);
    }

    [Fact]
    public void OneStepOff_OnMoreThanOnePercent_Fails()
    {
        var e = Steps(200);
        var a = (float[])e.Clone();
        for (int i = 0; i < 3; i++) a[i * 50] += 0.5f; // 1.5%
        var c = Judge(e, a);
        Assert.False(c.Passed);
        Assert.Contains("one step off", c.Problem);
    }

    [Fact]
    public void TwoStepsOff_OnOneElement_Fails()
    {
        var e = Steps(1000);
        var a = (float[])e.Clone();
        a[500] += 1f;
        var c = Judge(e, a);
        Assert.False(c.Passed);
        Assert.Contains("more than one quantization step", c.Problem);
    }

    [Fact]
    public void Find_ReadsStepFromOutputQuantizeLinear_AndSkipsFloatOutputs()
    {
        var qdq = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "sr_block_qdq.onnx"));
        var step = Assert.Single(QuantizedOutputs.Find(qdq));
        Assert.Equal("hr", step.Key);
        Assert.Equal("hr_QuantizeLinear", step.Value.Source);
        Assert.Equal(Tensors.ToFloats(qdq.Graph.Initializer.Single(t => t.Name == "hr_scale"))[0], step.Value.Step);
        Assert.Empty(QuantizedOutputs.Find(ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "sr_block.onnx"))));
    }

    [Fact]
    public void Verify_FloatModel_KeepsFloatRule()
    {
        var m = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "sr_block.onnx"));
        var r = Verifier.Verify(ModelSource.FromModel(m), ModelSource.FromModel(m));
        Assert.True(r.Passed);
        Assert.All(r.Outputs, o => Assert.Null(o.QuantizedRule));
    }
}
