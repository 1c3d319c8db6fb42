using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using OnnxDeconv.GraphRewrite;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>Several sessions (1 and 2 intra-op threads) run from several threads at once give bit-identical outputs.</summary>
public sealed class PluginConcurrencyTests
{
    internal static (ModelProto Model, TensorValue X) DcganLikeModel(long[]? xDims = null)
    {
        var rng = new Random(7);
        var mb = new ModelBuilder("concurrency");
        long[] x = xDims ?? [2, 16, 10, 10];
        mb.Input("X", x);
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] };
        var w = mb.Initializer("W", [16, 8, 4, 4], PluginTestKit.RandomFloats(rng, 16 * 8 * 16));
        var b = mb.Initializer("B", [8], PluginTestKit.RandomFloats(rng, 8));
        var ct = mb.Node(Ops.ConvTranspose.OpType, ["X", w, b], ConvTransposeNode.ToAttributes(attrs));
        mb.Node(Ops.Relu.OpType, [ct], output: "Y");
        mb.Output("Y", ConvTransposeGeometry.Resolve(attrs, x, [16, 8, 4, 4]).OutputShape);
        return (mb.Build(), TensorValue.Float("X", x, PluginTestKit.RandomFloats(rng, x.Aggregate(1L, (p, d) => p * d))));
    }

    [Fact]
    public void SessionsAndThreadsAtOnce_GiveBitIdenticalOutputs()
    {
        var (model, x) = DcganLikeModel();
        var original = PluginTestKit.RunSingle(model, x);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var runners = new[] { 1, 2, 2 }.Select(t => new OrtRunner(rewritten, PluginTestKit.WithPlugin(t))).ToList();
        try
        {
            var baseline = runners[0].Run([x])[0].AsFloats();
            PluginTestKit.AssertClose(original, baseline, "plugin vs ORT");
            var outputs = new System.Collections.Concurrent.ConcurrentBag<float[]>();
            var threads = runners.SelectMany(r => Enumerable.Range(0, 2).Select(_ => new Thread(() =>
            {
                for (int i = 0; i < 4; i++) outputs.Add(r.Run([x])[0].AsFloats());
            }))).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Equal(runners.Count * 2 * 4, outputs.Count);
            foreach (var y in outputs)
                Assert.True(baseline.AsSpan().SequenceEqual(y), "outputs differ between sessions/threads");
        }
        finally { runners.ForEach(r => r.Dispose()); }
    }

    [Fact]
    public void DynamicShapes_RewriteAndRunAtAnySize()
    {
        // Symbolic batch and spatial dims: pads from explicit pads do not depend on the size, so the rewrite applies;
        // the kernel derives the geometry from each call's X.
        var (model, _) = DcganLikeModel();
        var input = model.Graph.Input[0];
        model.Graph.Input[0] = ModelBuilder.ValueInfo(input.Name, TensorProto.Types.DataType.Float, [-1, 16, -1, -1], ["N", "C", "H", "W"]);
        model.Graph.Output[0] = ModelBuilder.ValueInfo("Y", TensorProto.Types.DataType.Float, null);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        Assert.Equal(0, PluginTestKit.Count(rewritten, Ops.ConvTranspose.OpType));
        // Shape inference (InferOutputShapeFn) tells ORT Y's rank, channels and symbolic batch before any run.
        using (var runner = new OrtRunner(rewritten, PluginTestKit.WithPlugin()))
        {
            var meta = runner.Session.OutputMetadata["Y"];
            Assert.Equal([-1, 8, -1, -1], meta.Dimensions);
            Assert.Equal("N", meta.SymbolicDimensions[0]);
        }
        foreach (long[] dims in new[] { new long[] { 1, 16, 3, 7 }, [3, 16, 6, 5] })
        {
            var x = TensorValue.Float("X", dims, PluginTestKit.RandomFloats(new Random(3), dims.Aggregate(1L, (p, d) => p * d)));
            PluginTestKit.AssertClose(PluginTestKit.RunSingle(model, x), PluginTestKit.RunSingle(rewritten, x, PluginTestKit.WithPlugin(2)), $"X [{string.Join(",", dims)}]");
        }
    }

    [Fact]
    public void NonConstantWeights_AreLeftWithReason()
    {
        var (model, _) = DcganLikeModel();
        var w = model.Graph.Initializer.Single(t => t.Name == "W");
        model.Graph.Input.Add(ModelBuilder.ValueInfo("W", TensorProto.Types.DataType.Float, w.Dims.ToArray()));
        var result = ConvTransposeToPlugin.RewriteAll(model);
        var report = Assert.Single(result.Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("not constant", report.Reason);
        Assert.False(result.Changed);
        Assert.Equal(1, PluginTestKit.Count(model, Ops.ConvTranspose.OpType));
    }

    [Fact]
    public void PluginOutput_MatchesScalarReference()
    {
        // Independent of ORT: the plugin output equals the project's scalar oracle (+ bias, Relu).
        var (model, x) = DcganLikeModel([1, 16, 5, 4]);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        var y = PluginTestKit.RunSingle(rewritten, x, PluginTestKit.WithPlugin());
        var g = ConvTransposeGeometry.Resolve(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, x.Dims, [16, 8, 4, 4]);
        var w = OnnxDeconv.GraphRewrite.IO.Tensors.ToFloats(model.Graph.Initializer.Single(t => t.Name == "W"));
        var b = OnnxDeconv.GraphRewrite.IO.Tensors.ToFloats(model.Graph.Initializer.Single(t => t.Name == "B"));
        var reference = ReferenceConvTranspose.Compute(g, x.AsFloats(), w, b).Select(v => Math.Max(v, 0f)).ToArray();
        PluginTestKit.AssertClose(reference, y, "plugin vs scalar reference");
    }
}
