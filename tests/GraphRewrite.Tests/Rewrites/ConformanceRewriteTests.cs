using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.Rewrites;

public class ConformanceRewriteTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in RepoPaths.ConformanceCases("convtranspose"))
            data.Add(Path.GetFileName(dir));
        return data;
    }

    [Fact]
    public void ConformanceFolder_HasTheConvTransposeCases() =>
        // 14 upstream cases (test_convtranspose*, test_ConvTranspose2d*, test_operator_convtranspose); guards against an empty theory.
        Assert.True(Cases().Count >= 14, $"only {Cases().Count} ConvTranspose cases found under {RepoPaths.Conformance}");

    /// <summary>
    /// Node tests keep W (and B) as graph inputs: they are frozen from test_data_set_0 as initializers first (what
    /// `test --freeze-inputs` does), then the model is rewritten and checked against the stored outputs and against
    /// ONNX Runtime's ConvTranspose on the frozen model, within |a-b| &lt;= 1e-5 + 1e-4*|b|.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void ConformanceCase_Rewritten_MatchesExpectedAndOrt(string name)
    {
        string dir = Path.Combine(RepoPaths.Conformance, name);
        var (model, inputs, outputs) = LoadFrozen(dir);
        var result = Optimizer.Run(model, new OptimizeOptions());
        Assert.All(result.Nodes, n => Assert.True(n.Rewritten, $"{n.Node}: {n.Reason}"));
        Assert.NotEmpty(result.Nodes);
        AssertNoConvTranspose(result.Model, name);

        var actual = OrtRunner.RunOnce(result.Model, inputs);
        for (int i = 0; i < outputs.Count; i++)
            AssertClose(outputs[i], actual[i], $"{name} vs stored output {i}");
        AssertSameOutputs(model, result.Model, inputs, $"{name} vs ONNX Runtime");
    }

    /// <summary>Binds every graph input but the first to its test_data_set_0 value as an initializer.</summary>
    internal static (ModelProto Model, List<TensorValue> Inputs, List<TensorValue> Outputs) LoadFrozen(string dir)
    {
        var model = ModelIO.Load(Path.Combine(dir, "model.onnx"));
        var data = Path.Combine(dir, "test_data_set_0");
        var initNames = model.Graph.Initializer.Select(t => t.Name).ToHashSet();
        // IR 3 exports (test_ConvTranspose2d*, test_operator_convtranspose) list their initializers among the inputs;
        // those stay as they are (the rewrite treats them as constants) and are not fed.
        var realInputs = model.Graph.Input.Where(i => !initNames.Contains(i.Name)).ToList();
        var fed = new List<TensorValue>();
        for (int i = 0; i < realInputs.Count; i++)
        {
            var v = TensorValue.Load(Path.Combine(data, $"input_{i}.pb"));
            if (i == 0) { fed.Add(v with { Name = realInputs[i].Name }); continue; }
            model.Graph.Input.Remove(realInputs[i]);
            model.Graph.Initializer.Add(v.ToProto(realInputs[i].Name));
        }
        var outs = Directory.GetFiles(data, "output_*.pb").Order(StringComparer.Ordinal).Select(TensorValue.Load).ToList();
        return (model, fed, outs);
    }
}
