using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.Pipeline;

/// <summary>Counts reads per tensor name: a site reads each weight once however many lowerings look at it.</summary>
internal sealed class CountingWeightSource : IWeightSource
{
    public Dictionary<string, int> Reads { get; } = new(StringComparer.Ordinal);

    public float[] ReadFloats(ModelProto model, TensorProto tensor)
    {
        Reads[tensor.Name] = Reads.GetValueOrDefault(tensor.Name) + 1;
        return ModelWeightSource.Instance.ReadFloats(model, tensor);
    }
}

// One matcher, many lowerings: every target lowers the same sites unless the report names the lowering whose own
// limit refused one (RefusedBy). Outputs are compared with ONNX Runtime (ORT_DISABLE_ALL) at |a-b| <= 1e-5 + 1e-4*|b|.
public sealed class SitePipelineTests : IDisposable
{
    private readonly string _cacheDir = Directory.CreateTempSubdirectory("onnx-deconv-sites-").FullName;
    public void Dispose() => Directory.Delete(_cacheDir, recursive: true);

    private static readonly Target[] LoweringTargets = [Target.Portable, Target.Plugin];

    /// <summary>IR version 3: every initializer (W and B) is also listed as a graph input, as that IR requires.</summary>
    private static ModelProto Ir3Model()
    {
        var rng = new Random(5);
        var mb = new ModelBuilder("ir3", opset: 9, irVersion: 3);
        mb.Input("X", [1, 2, 4, 4]);
        mb.Initializer("W", [2, 3, 3, 3], RandomFloats(rng, 54));
        mb.Initializer("B", [3], RandomFloats(rng, 3));
        mb.Input("W", [2, 3, 3, 3]);
        mb.Input("B", [3]);
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"],
            ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }), output: "Y", name: "deconv");
        mb.Output("Y", null);
        return mb.Build();
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    public void Ir3InitializersListedAsInputs_EveryTargetLowersTheSite_SameOutputs(Target target)
    {
        // Was: portable rewrote this model, the plugin refused it ("weights are not constant").
        var model = Ir3Model();
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        var report = Assert.Single(result.Nodes);
        Assert.True(report.Rewritten, report.Reason);
        Assert.Equal(before, ModelIO.Serialize(model)); // the input is never modified
        // That IR's convention is kept: the new initializers are listed as inputs, the dropped W is not any more.
        var inputs = result.Model.Graph.Input.Select(i => i.Name).ToHashSet();
        Assert.All(result.Model.Graph.Initializer, t => Assert.Contains(t.Name, inputs));
        Assert.DoesNotContain("W", inputs);
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name == "W");

        var x = new[] { TensorValue.Float("X", [1, 2, 4, 4], RandomFloats(new Random(9), 32)) };
        var expected = OrtRunner.RunOnce(model, x);
        var actual = OrtRunner.RunOnce(result.Model, x, new OrtRunOptions { Configure = OnnxDeconvSessionOptions.ConfigureFor(result.Model) });
        AssertClose(expected[0], actual[0], $"IR 3 model, target {target}");
    }

    [Fact]
    public void WeightsFedAtRunTime_EveryTargetRefusesWithTheSameReason_ModelByteIdentical()
    {
        // IR >= 4: an initializer listed as an input is a default the caller may override, not a constant.
        var model = Ir3Model();
        model.IrVersion = 8;
        var before = ModelIO.Serialize(model);
        var reports = LoweringTargets.Select(t => (t, r: Optimizer.Run(model, new OptimizeOptions { Target = t }))).ToList();
        foreach (var (t, r) in reports)
        {
            var n = Assert.Single(r.Nodes);
            Assert.False(n.Rewritten);
            Assert.Null(n.RefusedBy); // the site's own reason, not one lowering's
            Assert.Contains("'W'", n.Reason);
            Assert.Equal(before, ModelIO.Serialize(r.Model));
        }
        Assert.Single(reports.Select(p => p.r.Nodes[0].Reason).Distinct());
    }

    [Fact]
    public void DisabledLowering_SiteLeftAlone_ReportNamesIt_ModelByteIdentical()
    {
        var model = Ir3Model();
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Portable, Disabled = new HashSet<string> { "portable" } });
        var report = Assert.Single(result.Nodes);
        Assert.False(report.Rewritten);
        Assert.Equal("portable", report.RefusedBy);
        Assert.Equal(ModelIO.Serialize(model), ModelIO.Serialize(result.Model));
        // Every lowering has a distinct name to disable it by.
        Assert.Equal(Lowerings.All.Count, Lowerings.All.Select(l => l.Name).Distinct().Count());
    }

    [Fact]
    public void WarmDecisionCache_BuildsNoCandidate_ReadsEachWeightOnce()
    {
        var rng = new Random(1);
        var model = SingleNode(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, [1, 3, 5, 5], [3, 4, 3, 3],
            RandomFloats(rng, 108), RandomFloats(rng, 4), opset: 17);
        var cold = new CountingWeightSource();
        var first = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var r1 = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = first, Cache = new DecisionCache(_cacheDir), Weights = cold });
        Assert.True(Assert.Single(r1.Nodes).Rewritten);
        // Cold: once for the isolated candidates (shared by all of them), once when the choice is applied.
        Assert.Equal(2, cold.Reads["W"]);

        var warm = new CountingWeightSource();
        var second = ScriptedTimer.Prefer(AutoTuner.PortablePerPhase);
        var r2 = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = second, Cache = new DecisionCache(_cacheDir), Weights = warm });
        Assert.Empty(second.Calls);
        Assert.True(Assert.Single(r2.Nodes).Cached);
        // Building any isolated candidate reads the weights; the one read is the chosen lowering's own.
        Assert.Equal(new Dictionary<string, int> { ["W"] = 1, ["B"] = 1 }, warm.Reads);
        Assert.Equal(ModelIO.Serialize(r1.Model), ModelIO.Serialize(r2.Model));
    }

    public static TheoryData<string> AllModels()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(RepoPaths.DemoModels, "*.onnx").Order()) data.Add(f);
        foreach (var f in Directory.GetFiles(RepoPaths.Conformance, "model.onnx", SearchOption.AllDirectories).Order()) data.Add(f);
        return data;
    }

    [Theory]
    [MemberData(nameof(AllModels))]
    public void EveryModel_EveryTargetLowersTheSameSites_UnlessALoweringNamesItsReason(string path)
    {
        var model = ModelIO.Load(path);
        var byTarget = LoweringTargets.ToDictionary(t => t, t => Optimizer.Run(model, new OptimizeOptions { Target = t }).Nodes);
        // Sites (after the pre-passes): one report per ConvTranspose, keyed by position; the pre-passes are the same for every target.
        var counts = byTarget.Values.Select(n => n.Count).Distinct().ToList();
        Assert.Single(counts);
        for (int i = 0; i < counts[0]; i++)
        {
            var row = LoweringTargets.Select(t => (t, r: byTarget[t][i])).ToList();
            Assert.Single(row.Select(p => p.r.Node).Distinct());
            if (row.All(p => p.r.Rewritten) || row.All(p => !p.r.Rewritten && p.r.RefusedBy is null)) continue;
            foreach (var (t, r) in row.Where(p => !p.r.Rewritten))
                Assert.True(r.RefusedBy is not null, $"{Path.GetFileName(path)} {r.Node}: {t} left it ({r.Reason}) without naming a lowering-specific reason");
        }
        // And the whole model as every target's matcher sees it: the same sites, the same reasons where none is a site.
        var index = new GraphIndex(model);
        foreach (var node in model.Graph.Node.Where(ConvTransposeMatcher.IsCandidate))
        {
            bool isSite = ConvTransposeMatcher.TryMatch(index, node, out var site, out var reason);
            foreach (var l in Lowerings.All)
                if (isSite) _ = l.CanLower(site!); // cheap and never throws
        }
    }
}
