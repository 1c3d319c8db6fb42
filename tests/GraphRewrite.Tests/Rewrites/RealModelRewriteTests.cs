using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.Rewrites;

/// <summary>
/// The real exported models in ../shared/models: every ConvTranspose rewritten, and the rewritten model matches
/// ONNX Runtime's original (ORT_DISABLE_ALL) within |a-b| &lt;= 1e-5 + 1e-4*|b| on every output.
/// </summary>
public class RealModelRewriteTests
{
    [Theory]
    [InlineData("gtcrn-simple", 11)]       // 6x 1x1, 3x depthwise dilated, grouped and plain k(1,5) s(1,2); static shapes
    [InlineData("vaelight-sd-preview", 6)] // k2 s2 with dynamic H/W at opset 10 (no DepthToSpace CRD there)
    public void RealModel_WithTestData_AllConvTransposeRewritten_MatchesOrt(string name, int convTransposes)
    {
        string dir = Path.Combine(RepoPaths.RealModels, name);
        var model = ModelIO.Load(Path.Combine(dir, "model.onnx"));
        var inputs = model.Graph.Input
            .Select((v, i) => TensorValue.Load(Path.Combine(dir, "test_data_set_0", $"input_{i}.pb")) with { Name = v.Name })
            .ToList();
        var rewritten = RewriteAll(model, convTransposes);
        AssertSameOutputs(model, rewritten, inputs, name);
    }

    [Fact]
    public void VaeLight_OtherLatentSize_RewriteHoldsForDynamicHW()
    {
        // The rewrite has no input size baked in: the same rewritten model must hold at a size it was not built for.
        var model = ModelIO.Load(Path.Combine(RepoPaths.RealModels, "vaelight-sd-preview", "model.onnx"));
        var x = TensorValue.Float(model.Graph.Input[0].Name, [1, 4, 24, 40], RandomFloats(new Random(2440), 4 * 24 * 40));
        var rewritten = RewriteAll(model, 6);
        AssertSameOutputs(model, rewritten, [x], "vaelight-sd-preview at 24x40");
    }

    [Fact]
    public void SedGenUnet_SeededInput_AllConvTransposeRewritten_MatchesOrt()
    {
        // No stored data for this model: seeded random input at its declared [N,1,224,224] with N = 1.
        var model = ModelIO.Load(Path.Combine(RepoPaths.RealModels, "sed-gen-unet", "model.onnx"));
        var x = TensorValue.Float(model.Graph.Input[0].Name, [1, 1, 224, 224], RandomFloats(new Random(224), 224 * 224));
        var rewritten = RewriteAll(model, 2);
        AssertSameOutputs(model, rewritten, [x], "sed-gen-unet");
    }

    private static Onnx.ModelProto RewriteAll(Onnx.ModelProto model, int convTransposes)
    {
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions());
        Assert.Equal(before, ModelIO.Serialize(model)); // the input model is never modified
        Assert.Equal(convTransposes, result.Nodes.Count);
        Assert.All(result.Nodes, n => Assert.True(n.Rewritten, $"{n.Node}: {n.Reason}"));
        AssertNoConvTranspose(result.Model, "rewritten");
        // Opset imports are never changed by the portable rewrite.
        Assert.Equal(model.OpsetImport, result.Model.OpsetImport);
        // Weights of the replaced ConvTransposes are gone (no dead initializers left behind).
        var read = result.Model.Graph.Node.SelectMany(n => n.Input).ToHashSet();
        Assert.All(result.Model.Graph.Initializer, t => Assert.Contains(t.Name, read));
        return result.Model;
    }
}
