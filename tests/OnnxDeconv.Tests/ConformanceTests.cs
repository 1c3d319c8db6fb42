using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests;

/// <summary>
/// Every ConvTranspose case of the ONNX backend tests in ../shared/conformance (test_convtranspose*,
/// test_ConvTranspose2d*, test_operator_convtranspose): the geometry's output shape equals the expected output's shape
/// exactly, and the scalar reference reproduces the expected values within |a-b| &lt;= 1e-5 + 1e-4*|b| (float32).
/// </summary>
public sealed class ConformanceTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in RepoPaths.ConformanceCases("convtranspose")) data.Add(Path.GetFileName(dir));
        return data;
    }

    [Fact]
    public void ConformanceCases_AllConvTransposeFoldersAreFound()
    {
        // 14 upstream cases: guards against the theory silently running on nothing (e.g. a renamed folder).
        int count = RepoPaths.ConformanceCases("convtranspose").Count();
        Assert.True(count >= 14, $"found only {count} ConvTranspose conformance cases");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ConformanceCase_GeometryShapeAndReferenceValues_MatchExpectedOutput(string caseName)
    {
        string dir = Path.Combine(RepoPaths.Conformance, caseName);
        var model = ModelIO.Load(Path.Combine(dir, "model.onnx"));
        var node = Assert.Single(model.Graph.Node, ConvTransposeNode.Is);
        var values = LoadValues(model, Path.Combine(dir, "test_data_set_0"));

        var x = values[node.Input[0]];
        var w = values[node.Input[1]];
        float[] bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? values[node.Input[2]].AsFloats() : [];
        var expected = TensorValue.Load(Path.Combine(dir, "test_data_set_0", "output_0.pb"));

        var g = ConvTransposeGeometry.Resolve(ConvTransposeNode.ReadAttributes(node), x.Dims, w.Dims);
        Assert.Equal(expected.Dims, g.OutputShape);
        var y = ReferenceConvTranspose.Compute(g, x.AsFloats(), w.AsFloats(), bias);
        Assert.Null(Close.Mismatch(y, expected.AsFloats()));
    }

    /// <summary>ONNX Runtime (ORT_DISABLE_ALL) agrees with the same expected outputs, so the three judges are consistent.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void ConformanceCase_OnnxRuntime_MatchesExpectedOutput(string caseName)
    {
        string dir = Path.Combine(RepoPaths.Conformance, caseName);
        var model = ModelIO.Load(Path.Combine(dir, "model.onnx"));
        var values = LoadValues(model, Path.Combine(dir, "test_data_set_0"));
        var index = new GraphIndex(model);
        var inputs = model.Graph.Input.Where(i => index.Initializer(i.Name) is null).Select(i => values[i.Name]);
        var y = OrtRunner.RunOnce(model, inputs)[0];
        var expected = TensorValue.Load(Path.Combine(dir, "test_data_set_0", "output_0.pb"));
        Assert.Equal(expected.Dims, y.Dims);
        Assert.Null(Close.Mismatch(y.AsFloats(), expected.AsFloats()));
    }

    /// <summary>
    /// Initializers by name, plus input_k.pb for the k-th graph input that is not an initializer (the backend-test
    /// convention; old models also list their initializers as graph inputs).
    /// </summary>
    private static Dictionary<string, TensorValue> LoadValues(GraphRewrite.Onnx.ModelProto model, string dataDir)
    {
        var index = new GraphIndex(model);
        var values = new Dictionary<string, TensorValue>(StringComparer.Ordinal);
        foreach (var t in model.Graph.Initializer) values[t.Name] = TensorValue.FromProto(t);
        int k = 0;
        foreach (var input in model.Graph.Input)
        {
            if (index.Initializer(input.Name) is not null) continue;
            values[input.Name] = TensorValue.Load(Path.Combine(dataDir, $"input_{k++}.pb")) with { Name = input.Name };
        }
        return values;
    }
}
