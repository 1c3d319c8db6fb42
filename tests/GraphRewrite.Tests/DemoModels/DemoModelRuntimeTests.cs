using OnnxDeconv.DemoModels;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using OnnxDeconv.TestSupport;
using Xunit.Abstractions;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.DemoModels;

/// <summary>
/// Every demo model runs in ONNX Runtime (ORT_DISABLE_ALL) with its declared output shape and a non-degenerate output,
/// and the first ConvTranspose of each, run alone, matches the scalar reference.
/// Numeric checks: |a - b| &lt;= atol + rtol*|b| with atol 1e-5, rtol 1e-4 (float32).
/// </summary>
public sealed class DemoModelRuntimeTests(ITestOutputHelper output)
{
    private const float Atol = 1e-5f, Rtol = 1e-4f;

    public static TheoryData<string> AllModels() => new(DemoModelCatalog.All().Select(m => m.FileName));

    // Float weights only: a QDQ model's weights come from DequantizeLinear (QdqDemoModelTests checks those).
    public static TheoryData<string> ConvTransposeModels() => new(DemoModelCatalog.All()
        .Where(m => m.Model.Graph.Node.FirstOrDefault(ConvTransposeNode.Is) is { } n && m.Model.Graph.Initializer.Any(t => t.Name == n.Input[1]))
        .Select(m => m.FileName));

    [Theory]
    [MemberData(nameof(AllModels))]
    public void DemoModel_RunsInOrt_WithDeclaredOutputShapeAndLiveValues(string fileName)
    {
        var model = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, fileName));
        var outputs = OrtRunner.RunOnce(model, DemoInputs.For(model));

        Assert.Equal(model.Graph.Output.Count, outputs.Count);
        foreach (var declared in model.Graph.Output)
        {
            var actual = Assert.Single(outputs, o => o.Name == declared.Name);
            Assert.Equal(declared.Type.TensorType.Shape.Dim.Select(d => d.DimValue), actual.Dims);
            var y = actual.WidenedFloats();
            Assert.All(y, v => Assert.True(float.IsFinite(v)));
            // Not degenerate: a real spread of values, and a Tanh output that is not stuck at +-1.
            double mean = y.Average(v => (double)v);
            double std = Math.Sqrt(y.Average(v => (v - mean) * (v - mean)));
            output.WriteLine($"{fileName} '{declared.Name}' [{string.Join(",", actual.Dims)}]: mean {mean:F3} std {std:F3} min {y.Min():F3} max {y.Max():F3}");
            Assert.True(std > 0.05, $"{fileName}: output '{declared.Name}' std {std:G3} is degenerate");
            if (model.Graph.Node.Single(n => n.Output.Contains(declared.Name)).OpType == Ops.Tanh.OpType)
            {
                double saturated = y.Count(v => Math.Abs(v) > 0.999f) / (double)y.Length;
                output.WriteLine($"  tanh saturated (|y| > 0.999): {saturated:P1}");
                Assert.True(saturated < 0.25, $"{fileName}: {saturated:P0} of '{declared.Name}' is saturated");
            }
        }
    }

    [Theory]
    [MemberData(nameof(ConvTransposeModels))]
    public void DemoModel_FirstConvTranspose_MatchesReference(string fileName)
    {
        var model = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, fileName));
        var node = model.Graph.Node.First(ConvTransposeNode.Is);
        var x = CaptureTensor(model, node.Input[0]);

        var w = model.Graph.Initializer.Single(t => t.Name == node.Input[1]);
        var b = node.Input.Count > 2 ? model.Graph.Initializer.Single(t => t.Name == node.Input[2]) : null;
        var geometry = ConvTransposeGeometry.Resolve(ConvTransposeNode.ReadAttributes(node), x.Dims, w.Dims.ToArray());
        var expected = ReferenceConvTranspose.Compute(geometry, x.WidenedFloats(), Tensors.ToFloats(w), b is null ? [] : Tensors.ToFloats(b));

        // The layer alone: same node, same initializers, its captured input as the only graph input.
        var builder = new ModelBuilder("isolated", 17, 8);
        builder.Input(node.Input[0], x.Dims, x.ElementType);
        builder.Graph.Initializer.Add(w);
        if (b is not null) builder.Graph.Initializer.Add(b);
        builder.Graph.Node.Add(node.Clone());
        builder.Output(node.Output[0], geometry.OutputShape, x.ElementType);
        var actual = Assert.Single(OrtRunner.RunOnce(builder.Build(), [x with { Name = node.Input[0] }]));

        Assert.Equal(geometry.OutputShape, actual.Dims);
        if (actual.ElementType == DataType.Float)
            AssertClose(expected, actual.AsFloats(), $"{fileName} {Attributes.Describe(node)}");
        else
        {
            // A half model: the float32 reference rounded to its type, held to that type's rule (Tolerance.ForType).
            var c = OnnxDeconv.GraphRewrite.Verification.OutputComparer.Compare(node.Output[0], TensorValue.Rounded(node.Output[0], actual.ElementType, actual.Dims, expected),
                actual, OnnxDeconv.GraphRewrite.Verification.Tolerance.Default);
            Assert.True(c.Passed, $"{fileName} {Attributes.Describe(node)}: {c.Describe()} ({c.Tolerance})");
        }
    }

    /// <summary>Runs the model with <paramref name="name"/> exposed as an extra graph output and returns its value.</summary>
    internal static TensorValue CaptureTensor(ModelProto model, string name)
    {
        var copy = model.Clone();
        bool isInput = copy.Graph.Input.Any(i => i.Name == name);
        // Intermediate values have the model's element type (its first input's: float, or float16 for a half model).
        var type = (DataType)(copy.Graph.Input.FirstOrDefault()?.Type?.TensorType?.ElemType ?? (int)DataType.Float);
        if (!isInput) copy.Graph.Output.Add(ModelBuilder.ValueInfo(name, type, null));
        var inputs = DemoInputs.For(model);
        if (isInput) return inputs.Single(i => i.Name == name);
        using var runner = new OrtRunner(copy);
        return Assert.Single(runner.Run(inputs, [name]));
    }

    internal static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float tol = Atol + Rtol * Math.Abs(expected[i]);
            if (!(Math.Abs(actual[i] - expected[i]) <= tol))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]} (tolerance {tol})");
        }
    }
}
