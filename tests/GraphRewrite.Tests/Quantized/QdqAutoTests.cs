using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Tests.Pipeline;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.TestSupport;
using Xunit.Abstractions;

namespace OnnxDeconv.GraphRewrite.Tests.Quantized;

/// <summary>
/// <c>--target auto</c> on QDQ sites: each site is timed as it runs (DQ -> ConvTranspose -> Q against the QDQ portable
/// lowering, uint8 in and out, QLinearConv fusion on), the faster kept with the timings in the report, the result within
/// one quantization step of the original; the decision cache keys carry the quantization.
/// </summary>
public sealed class QdqAutoTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _cacheDir = Directory.CreateTempSubdirectory("onnx-deconv-qdq-auto-").FullName;
    public void Dispose() => Directory.Delete(_cacheDir, recursive: true);

    public static TheoryData<string> Models() => new() { "dcgan_generator_qdq.onnx", "unet_decoder_block_qdq.onnx", "sr_block_qdq.onnx" };

    private static ModelProto Load(string name) => ModelIO.Load(Path.Combine(RepoPaths.DemoModels, name));

    [Theory]
    [MemberData(nameof(Models))]
    public void QdqDemo_Auto_TimesEverySiteAgainstTheQdqLowering_AndStaysWithinOneStep(string name)
    {
        var original = Load(name);
        var result = Optimizer.Run(original, new OptimizeOptions { Target = Target.Auto, Threads = 1, NodeBudget = TimeSpan.FromMilliseconds(150) });
        foreach (var n in result.Nodes)
        {
            output.WriteLine($"{n.Node}: {n.Choice} ({(n.Rewritten ? n.Lowering : n.Reason)}); "
                + string.Join(", ", n.Candidates!.Select(c => $"{c.Label} {(c.MedianMs is { } ms ? $"{ms:0.###} ms" : c.Note)}")));
            // Both the QDQ original and its lowering ran and were timed: the choice is a measurement, not a refusal.
            Assert.NotNull(n.Candidates!.Single(c => c.Label == AutoTuner.Unchanged).MedianMs);
            Assert.NotNull(n.Candidates!.Single(c => c.Label == AutoTuner.PortableCombined).MedianMs);
            Assert.Contains(n.Candidates!, c => c.Label == AutoTuner.Plugin && c.Note!.Contains("float32 or float16 only"));
            Assert.Equal(n.Rewritten, n.Choice == AutoTuner.PortableCombined);
        }
        if (result.WholeModel is { } w) output.WriteLine($"whole model: original {w.OriginalMs:0.###} ms, auto {w.ResultMs:0.###} ms");
        var report = Verifier.Verify(ModelSource.FromModel(original), ModelSource.FromModel(result.Model), new VerifyOptions { Seed = 3 });
        foreach (var o in report.Outputs) output.WriteLine($"'{o.Name}': {o.Describe()}; {o.QuantizedRule}");
        Assert.True(report.Passed, string.Join("; ", report.Outputs.Select(o => o.Describe())));
    }

    [Fact]
    public void QdqSite_ScriptedWin_IsLoweredToQLinearConvForm_WithoutFloatWeights()
    {
        var original = Load("sr_block_qdq.onnx");
        var result = Optimizer.Run(original, new OptimizeOptions { Target = Target.Auto, Timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined) });
        var node = Assert.Single(result.Nodes);
        Assert.True(node.Rewritten, node.Reason);
        Assert.Equal(AutoTuner.PortableCombined, node.Choice);
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.DataType == (int)TensorProto.Types.DataType.Float && t.Dims.Count >= 3);
        var report = Verifier.Verify(ModelSource.FromModel(original), ModelSource.FromModel(result.Model), new VerifyOptions { Seed = 5 });
        Assert.True(report.Passed, string.Join("; ", report.Outputs.Select(o => o.Describe())));
    }

    [Fact]
    public void QdqSite_ScriptedLoss_KeptByteIdentical_WithTheTimingsInTheReason()
    {
        var original = Load("sr_block_qdq.onnx");
        var bytes = ModelIO.Serialize(original);
        var result = Optimizer.Run(original, new OptimizeOptions { Target = Target.Auto, Timer = ScriptedTimer.Prefer(AutoTuner.Unchanged) });
        var node = Assert.Single(result.Nodes);
        Assert.False(node.Rewritten);
        Assert.Contains("no candidate was 3% faster", node.Reason);
        Assert.Contains("portable-combined 10", node.Reason);
        Assert.Equal(bytes, ModelIO.Serialize(result.Model));
    }

    [Fact]
    public void QdqSite_WarmCache_TimesAndBuildsNothing_SameModel()
    {
        var original = Load("unet_decoder_block_qdq.onnx");
        var r1 = Optimizer.Run(original, new OptimizeOptions { Target = Target.Auto, Timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined), Cache = new DecisionCache(_cacheDir) });
        Assert.True(Assert.Single(r1.Nodes).Rewritten);
        // A miss would isolate the site and check each candidate in ONNX Runtime before timing: this timer fails if asked.
        var warm = new ScriptedTimer((_, _) => throw new InvalidOperationException("a warm cache must not time anything"));
        var r2 = Optimizer.Run(original, new OptimizeOptions { Target = Target.Auto, Timer = warm, Cache = new DecisionCache(_cacheDir) });
        Assert.Empty(warm.Calls);
        var node = Assert.Single(r2.Nodes);
        Assert.True(node.Cached);
        Assert.Equal(AutoTuner.PortableCombined, node.Choice);
        Assert.Equal(ModelIO.Serialize(r1.Model), ModelIO.Serialize(r2.Model));
    }

    [Fact]
    public void QdqSite_OtherWeightScales_MissTheCache()
    {
        // Same geometry, types and shapes; only the weight scales differ: the decision is not reused.
        var original = Load("unet_decoder_block_qdq.onnx");
        Optimizer.Run(original, new OptimizeOptions { Target = Target.Auto, Timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined), Cache = new DecisionCache(_cacheDir) });
        var other = original.Clone();
        var ct = other.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType);
        var dqW = other.Graph.Node.Single(n => n.Output.Contains(ct.Input[1]));
        var scale = other.Graph.Initializer.Single(t => t.Name == dqW.Input[1]);
        var doubled = Tensors.ToFloats(scale).Select(v => v * 2).ToArray();
        other.Graph.Initializer[other.Graph.Initializer.IndexOf(scale)] = Tensors.FromFloats(scale.Name, scale.Dims.ToArray(), doubled);
        var timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var r = Optimizer.Run(other, new OptimizeOptions { Target = Target.Auto, Timer = timer, Cache = new DecisionCache(_cacheDir) });
        Assert.False(Assert.Single(r.Nodes).Cached);
        Assert.Equal(1, timer.NodeCalls);
    }

    [Fact]
    public void QdqSite_DynamicWeightScale_AutoLeavesItByteIdenticalWithReason()
    {
        var model = QdqRewriteTests.DynamicWeightScaleModel();
        var bytes = ModelIO.Serialize(model);
        var timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        var node = Assert.Single(result.Nodes);
        output.WriteLine($"{node.Node}: {node.Reason}");
        Assert.False(node.Rewritten);
        Assert.Contains("not a constant float tensor (dynamic scales are not carried)", node.Reason);
        Assert.Equal(0, timer.NodeCalls);
        Assert.Equal(bytes, ModelIO.Serialize(result.Model));
        Assert.Equal(bytes, ModelIO.Serialize(model));
    }
}
