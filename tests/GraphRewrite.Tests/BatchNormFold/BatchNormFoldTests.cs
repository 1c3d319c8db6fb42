using OnnxDeconv.DemoModels;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.TestSupport;
using RandomFloatsKit = OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;
using static OnnxDeconv.GraphRewrite.Tests.ZeroInsertion.ZeroInsertionKit;
using BN = OnnxDeconv.GraphRewrite.Ops.BatchNormalization;

namespace OnnxDeconv.GraphRewrite.Tests.BatchNormFold;

public class BatchNormFoldTests
{
    /// <summary>X -> ConvTranspose -> BatchNormalization -> Y, seeded; BN statistics far from identity so a wrong fold shows.</summary>
    private static ModelProto ConvTransposeBn(int seed, bool? bias = null, long opset = 17)
    {
        var rng = new Random(seed);
        int r = rng.Next(2) + 1;
        long g = new long[] { 1, 2, 4 }[rng.Next(3)];
        long cin = g * rng.Next(1, 3), cout = g * rng.Next(1, 3);
        var k = Enumerable.Range(0, r).Select(_ => (long)rng.Next(1, 5)).ToArray();
        var s = Enumerable.Range(0, r).Select(_ => (long)rng.Next(1, 4)).ToArray();
        var pads = Enumerable.Range(0, 2 * r).Select(j => (long)rng.Next((int)k[j % r])).ToArray();
        var mb = new ModelBuilder("convtranspose_bn", opset, irVersion: 8);
        mb.Input("x", [1, cin, .. Enumerable.Range(0, r).Select(_ => (long)rng.Next(2, 6))]);
        long[] wShape = [cin, cout / g, .. k];
        var inputs = new List<string> { "x", mb.Initializer("w", wShape, RandomFloatsKit.RandomFloats(rng, wShape.Aggregate(1L, (a, b) => a * b))) };
        if (bias ?? rng.Next(2) == 0) inputs.Add(mb.Initializer("b", [cout], RandomFloatsKit.RandomFloats(rng, cout)));
        var attrs = new ConvTransposeAttributes { KernelShape = k, Strides = s, Pads = pads, Group = g };
        string y = mb.Node(Ops.ConvTranspose.OpType, inputs, ConvTransposeNode.ToAttributes(attrs), name: "deconv");
        var stats = new[] { "gamma", "beta", "mean", "var" }.Select((n, i) =>
            mb.Initializer(n, [cout], RandomFloatsKit.RandomFloats(rng, cout).Select(v => i switch { 0 => 2 * v, 1 => v, 2 => 0.5f * v, _ => 0.1f + Math.Abs(v) }).ToArray())).ToList();
        mb.Node(BN.OpType, [y, .. stats], [Attributes.Float(BN.Epsilon, 1e-3f)], output: "out", name: "bn");
        mb.Output("out", null);
        return mb.Build();
    }

    [Fact]
    public void RandomConvTransposeBatchNorm_Folded_MatchesOriginalInOnnxRuntime()
    {
        // float32 tolerance |a-b| <= 1e-5 + 1e-4*|b|; groups 1/2/4, with and without bias, 1D and 2D.
        for (int seed = 1; seed <= 24; seed++)
        {
            var model = ConvTransposeBn(seed, bias: seed % 2 == 0);
            var folded = model.Clone();
            var report = Assert.Single(FoldBatchNormIntoConvTranspose.RewriteAll(folded)).Report;
            Assert.True(report.Rewritten, report.Reason);
            Assert.DoesNotContain(folded.Graph.Node, n => n.OpType == BN.OpType);
            Assert.DoesNotContain(folded.Graph.Initializer, t => t.Name is "gamma" or "beta" or "mean" or "var" or "w" or "b");
            var ct = Assert.Single(folded.Graph.Node);
            Assert.Equal("out", ct.Output[0]);
            AssertSameOutputs(model, folded, [Input(model, seed)], $"seed {seed}");
        }
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    public void RandomConvTransposeBatchNorm_Optimized_ReportsFoldAndMatches(Target target)
    {
        for (int seed = 100; seed < 108; seed++)
        {
            var model = ConvTransposeBn(seed);
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var report = Assert.Single(result.Nodes);
            Assert.True(report.Rewritten, report.Reason);
            Assert.StartsWith(FoldBatchNormIntoConvTranspose.PatternName, report.Pattern);
            Assert.Contains("folded", report.Lowering);
            Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == BN.OpType);
            AssertSameOutputs(model, result.Model, [Input(model, seed)], $"{target} seed {seed}");
        }
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    public void DcganDemo_Optimized_NoBatchNormalizationLeft_Verified(Target target)
    {
        var model = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx"));
        Assert.Equal(4, model.Graph.Node.Count(n => n.OpType == BN.OpType));
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == BN.OpType);
        Assert.Equal(4, result.Nodes.Count(n => n.Rewritten && n.Pattern.StartsWith(FoldBatchNormIntoConvTranspose.PatternName, StringComparison.Ordinal)));
        if (target == Target.Plugin)
        {
            // ConvTranspose -> BN -> ReLU becomes one fused plugin node per block (and the last ConvTranspose + Tanh).
            Assert.All(result.Model.Graph.Node, n => Assert.Equal(Ops.TransposedConv.OpType, n.OpType));
            Assert.Equal(5, result.Model.Graph.Node.Count);
        }
        AssertSameOutputs(model, result.Model, DemoInputs.For(model), target.ToString());
    }

    [Fact]
    public void ZeroInsertionConvThenBatchNorm_FoldedIntoDerivedConvTranspose_Verified()
    {
        var cfg = Random(33);
        var model = Build(cfg);
        var rng = new Random(3);
        var stats = new[] { "gamma", "beta", "mean", "var" }.Select((n, i) =>
            Tensors.FromFloats(n, [cfg.Cout], RandomFloatsKit.RandomFloats(rng, cfg.Cout).Select(v => i == 3 ? 0.5f + Math.Abs(v) : v).ToArray())).ToList();
        model.Graph.Initializer.AddRange(stats);
        var conv = model.Graph.Node.Single(n => n.OpType == Ops.Conv.OpType);
        conv.Output[0] = "pre_bn";
        model.Graph.Node.Add(new NodeProto { OpType = BN.OpType, Name = "bn", Input = { "pre_bn", "gamma", "beta", "mean", "var" }, Output = { "y" } });
        foreach (var target in new[] { Target.Portable, Target.Plugin })
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var report = Assert.Single(result.Nodes);
            Assert.True(report.Rewritten, report.Reason);
            Assert.StartsWith($"{ZeroInsertConvToConvTranspose.PatternName}+BatchNormalization", report.Pattern);
            Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == BN.OpType);
            AssertSameOutputs(model, result.Model, [Input(model, 33)], $"{cfg} {target}");
        }
    }

    // --- not folded ------------------------------------------------------------------------------------------------

    private static void AssertNotFolded(ModelProto model, string reasonPart, bool run = true)
    {
        foreach (var target in new[] { Target.Portable, Target.Plugin })
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            Assert.Single(result.Model.Graph.Node, n => n.OpType == BN.OpType);
            var report = Assert.Single(result.Nodes, n => n.Pattern == FoldBatchNormIntoConvTranspose.PatternName);
            Assert.False(report.Rewritten);
            Assert.Contains(reasonPart, report.Reason);
            if (run) AssertSameOutputs(model, result.Model, [Input(model, 5)], target.ToString());
        }
        var direct = model.Clone();
        FoldBatchNormIntoConvTranspose.RewriteAll(direct);
        Assert.Equal(ModelIO.Serialize(model), ModelIO.Serialize(direct));
    }

    [Fact]
    public void BatchNormTrainingMode_NotFolded()
    {
        var model = ConvTransposeBn(5);
        var bn = model.Graph.Node.Single(n => n.OpType == BN.OpType);
        bn.Output.Add("running_mean");
        bn.Output.Add("running_var");
        bn.Attribute.Add(Attributes.Int(BN.TrainingMode, 1));
        AssertNotFolded(model, "training", run: false);
    }

    [Fact]
    public void BatchNormOpset6_FoldedOnlyInTestMode()
    {
        // BatchNormalization-6 defaults to is_test=0 (training statistics); with is_test=1 it is the inference form.
        var model = ConvTransposeBn(6, opset: 6);
        var direct = model.Clone();
        var report = Assert.Single(FoldBatchNormIntoConvTranspose.RewriteAll(direct)).Report;
        Assert.False(report.Rewritten);
        Assert.Contains("is_test", report.Reason);
        Assert.Equal(ModelIO.Serialize(model), ModelIO.Serialize(direct));

        model.Graph.Node.Single(n => n.OpType == BN.OpType).Attribute.Add(Attributes.Int(BN.IsTest, 1));
        Assert.True(Assert.Single(FoldBatchNormIntoConvTranspose.RewriteAll(model)).Report.Rewritten);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == BN.OpType);
    }

    [Fact]
    public void BatchNormParamsNotConstant_NotFolded()
    {
        var model = ConvTransposeBn(5);
        var gamma = model.Graph.Initializer.Single(t => t.Name == "gamma");
        model.Graph.Initializer.Remove(gamma);
        model.Graph.Input.Add(ModelBuilder.ValueInfo("gamma", TensorProto.Types.DataType.Float, gamma.Dims.ToArray()));
        foreach (var target in new[] { Target.Portable, Target.Plugin })
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            Assert.Single(result.Model.Graph.Node, n => n.OpType == BN.OpType);
            Assert.Contains("not constant", Assert.Single(result.Nodes, n => n.Pattern == FoldBatchNormIntoConvTranspose.PatternName).Reason);
        }
    }

    [Fact]
    public void ConvTransposeOutputUsedElsewhere_NotFolded()
    {
        var model = ConvTransposeBn(5);
        string y = model.Graph.Node.Single(n => n.OpType == Ops.ConvTranspose.OpType).Output[0];
        model.Graph.Node.Add(new NodeProto { OpType = Ops.Relu.OpType, Name = "other", Input = { y }, Output = { "other_out" } });
        model.Graph.Output.Add(ModelBuilder.ValueInfo("other_out", TensorProto.Types.DataType.Float, null));
        AssertNotFolded(model, "used elsewhere");
    }
}
