using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.TestSupport;
using Xunit;
using static OnnxDeconv.GraphRewrite.Tests.ZeroInsertion.ZeroInsertionKit;

namespace OnnxDeconv.GraphRewrite.Tests.ZeroInsertion;

/// <summary>
/// Zero insertion as an exporter wrote it (Reshape[-1,1]/Concat(zeros)/Reshape per axis, borders by Concat, batch 1, no
/// value_info): recognised by the index probe, not by its op sequence. Equivalence through ONNX Runtime
/// (ORT_DISABLE_ALL) within |a-b| &lt;= 1e-5 + 1e-4*|b|.
/// </summary>
public class ExporterZeroInsertionTests
{
    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    [InlineData(Target.ConvTranspose)]
    public void ExporterDcgan_EveryLayerBecomesConvTranspose_MatchesOriginal(Target target)
    {
        var model = ExporterZeroInsertionModels.Dcgan();
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        var zi = result.Nodes.Where(n => n.Pattern.StartsWith(ZeroInsertConvToConvTranspose.PatternName, StringComparison.Ordinal)).ToList();
        Assert.Equal(2, zi.Count);
        Assert.All(zi, n => Assert.True(n.Rewritten, n.Reason));
        // k4 s2 p1 is what the exporter replaced: the probe reads stride 2 and borders back to exactly that.
        Assert.All(zi, n => Assert.Contains("strides [2,2], pads [1,1,1,1]", n.Lowering));
        // The interleave nodes and their zeros and shapes are gone: the saved model holds nothing the rewrite left unused.
        string[] chain = ["flat", "cols", "colmerge", "rowflat", "rowcat", "rowmerge", "borderw", "borderh", "zc", "zr", "bl", "br", "bt", "bb", "colshape", "rows", "rowshape"];
        var gone = chain.SelectMany(c => new[] { $"l0_{c}", $"l1_{c}" }).ToHashSet();
        Assert.DoesNotContain(result.Model.Graph.Node, n => gone.Contains(n.Name));
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => gone.Contains(t.Name));
        AssertSameOutputs(model, result.Model, [Input(model, 3)], $"exporter DCGAN, {target}");
    }

    [Theory]
    [InlineData(ExporterFlaw.PermutedInterleave, "permutes values")]
    [InlineData(ExporterFlaw.NonzeroBorder, "not every gap is zero")]
    public void ExporterDcgan_NearMissInFirstLayer_LeftAloneWithTheProbesReason(ExporterFlaw flaw, string reason)
    {
        var model = ExporterZeroInsertionModels.Dcgan(flaw);
        // Only the second layer is a true zero insertion; cut the model to the first layer to keep the whole file untouched.
        var index = new GraphIndex(model);
        var conv = model.Graph.Node.Single(n => n.Name == "l0_conv");
        Assert.True(Patterns.ZeroInsertion.LooksLikeZeroInsertion(index, conv));
        Assert.False(Patterns.ZeroInsertion.TryMatch(index, conv, out _, out var why));
        Assert.Contains(reason, why);

        var first = FirstLayerOnly(model);
        var report = AssertUntouched(first, Target.Portable, ZeroInsertConvToConvTranspose.PatternName);
        Assert.Contains(reason, report.Reason);
    }

    [Fact]
    public void ExporterDcgan_FirstLayerFlawed_SecondStillRewritten_MatchesOriginal()
    {
        var model = ExporterZeroInsertionModels.Dcgan(ExporterFlaw.PermutedInterleave);
        // The kept first layer hides the second's input shape from propagation: declared, as shape inference would.
        var act = model.Graph.Node.Single(n => n.Name == "l0_act").Output[0];
        model.Graph.ValueInfo.Add(ModelBuilder.ValueInfo(act, TensorProto.Types.DataType.Float, [1, 8, 8, 8]));
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Portable });
        var zi = result.Nodes.Where(n => n.Pattern.StartsWith(ZeroInsertConvToConvTranspose.PatternName, StringComparison.Ordinal)).ToList();
        Assert.Equal([false, true], zi.Select(n => n.Rewritten).OrderBy(v => v));
        AssertSameOutputs(model, result.Model, [Input(model, 4)], "flawed DCGAN");
    }

    /// <summary>The model up to the first layer's activation, which becomes the output.</summary>
    private static ModelProto FirstLayerOnly(ModelProto model)
    {
        var m = model.Clone();
        int cut = m.Graph.Node.IndexOf(m.Graph.Node.Single(n => n.Name == "l0_act"));
        while (m.Graph.Node.Count > cut + 1) m.Graph.Node.RemoveAt(m.Graph.Node.Count - 1);
        var used = m.Graph.Node.SelectMany(n => n.Input).ToHashSet();
        foreach (var t in m.Graph.Initializer.Where(t => !used.Contains(t.Name)).ToList()) m.Graph.Initializer.Remove(t);
        m.Graph.Output.Clear();
        m.Graph.Output.Add(ModelBuilder.ValueInfo(m.Graph.Node[^1].Output[0], TensorProto.Types.DataType.Float, null));
        return m;
    }
}
