using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// Every ONNX backend ConvTranspose case, with W/B frozen as initializers, rewritten to the plugin op and run in
/// ONNX Runtime with in-process registration: must match ORT's own ConvTranspose (ORT_DISABLE_ALL) and the
/// expected output within |a-b| &lt;= 1e-5 + 1e-4*|b|.
/// </summary>
public sealed class PluginConformanceTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in RepoPaths.ConformanceCases("convtranspose")) data.Add(Path.GetFileName(dir));
        return data;
    }

    [Fact]
    public void ConformanceCases_AreFound()
    {
        Assert.True(RepoPaths.ConformanceCases("convtranspose").Count() >= 10, $"expected the ConvTranspose backend cases in {RepoPaths.Conformance}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ConformanceCase_RewrittenToPlugin_MatchesOrtAndExpected(string name)
    {
        string dir = Path.Combine(RepoPaths.Conformance, name);
        var model = ModelIO.Load(Path.Combine(dir, "model.onnx"));
        string set = Path.Combine(dir, "test_data_set_0");
        var inputs = model.Graph.Input.Where(i => model.Graph.Initializer.All(t => t.Name != i.Name))
            .Select((vi, k) => TensorValue.Load(Path.Combine(set, $"input_{k}.pb")) with { Name = vi.Name }).ToList();
        var expected = TensorValue.Load(Path.Combine(set, "output_0.pb")).AsFloats();
        string x = inputs[0].Name;
        PluginTestKit.Freeze(model, inputs, keep: x);
        var xValue = inputs[0];

        var original = PluginTestKit.RunSingle(model, xValue);
        var result = ConvTransposeToPlugin.RewriteAll(model.Clone());
        Assert.All(result.Nodes, r => Assert.True(r.Rewritten, $"{r.Node}: {r.Reason}"));
        Assert.Equal(0, PluginTestKit.Count(result.Model, Ops.ConvTranspose.OpType));
        Assert.Equal(1, PluginTestKit.Count(result.Model, Ops.TransposedConv.OpType));
        Assert.Contains(result.Model.OpsetImport, o => o.Domain == Ops.TransposedConv.Domain);
        // The original weights are gone (packed copy only), unless something else still reads them.
        var wName = model.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType).Input[1];
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name == wName);

        var rewritten = PluginTestKit.RunSingle(result.Model, xValue, PluginTestKit.WithPlugin());
        PluginTestKit.AssertClose(original, rewritten, $"{name} vs ORT ConvTranspose");
        PluginTestKit.AssertClose(expected, rewritten, $"{name} vs expected output");
    }
}
