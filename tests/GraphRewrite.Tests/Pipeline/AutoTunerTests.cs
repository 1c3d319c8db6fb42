using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.Pipeline;

/// <summary>A timer whose verdicts a test scripts (which candidate "wins" must not depend on the machine's load); counts what it timed.</summary>
internal sealed class ScriptedTimer(Func<string, TimedModel, double> script) : ICandidateTimer
{
    public List<(string Subject, IReadOnlyList<string> Labels)> Calls { get; } = [];
    public int NodeCalls => Calls.Count(c => c.Subject != "whole model");

    public IReadOnlyList<double> Time(string subject, IReadOnlyList<TimedModel> models)
    {
        Calls.Add((subject, models.Select(m => m.Label).ToList()));
        return models.Select(m => script(subject, m)).ToList();
    }

    /// <summary>Per node: <paramref name="winner"/> takes 1 ms, everything else 10 ms; whole model: the result 1 ms, the original 2 ms.</summary>
    public static ScriptedTimer Prefer(string winner) => new((subject, m) =>
        subject == "whole model" ? (m.Label == "original" ? 2 : 1) : m.Label == winner ? 1 : 10);
}

// Target.Auto with the timing scripted: the choice follows the timer; every candidate is checked against the unchanged
// node before timing and the chosen model is compared with the original in ONNX Runtime at |a-b| <= 1e-5 + 1e-4*|b|.
public sealed class AutoTunerTests : IDisposable
{
    private readonly string _cacheDir = Directory.CreateTempSubdirectory("onnx-deconv-auto-").FullName;
    public void Dispose() => Directory.Delete(_cacheDir, recursive: true);

    private static ModelProto Model(int seed = 1)
    {
        var rng = new Random(seed);
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] };
        return SingleNode(attrs, [1, 3, 5, 5], [3, 4, 3, 3], RandomFloats(rng, 3 * 4 * 9), RandomFloats(rng, 4), opset: 17);
    }

    /// <summary>X ─ ConvTranspose "first" (→ H) ─ ConvTranspose "second" (→ Y).</summary>
    private static ModelProto TwoNodes()
    {
        var rng = new Random(3);
        var mb = new ModelBuilder("two", 17, 8);
        mb.Input("X", [1, 2, 4, 4]);
        mb.Initializer("W1", [2, 3, 3, 3], RandomFloats(rng, 54));
        mb.Initializer("W2", [3, 2, 4, 4], RandomFloats(rng, 96));
        var a1 = ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] });
        var a2 = ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] });
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W1"], a1, output: "H", name: "first");
        mb.Node(Ops.ConvTranspose.OpType, ["H", "W2"], a2, output: "Y", name: "second");
        mb.Output("Y", null);
        return mb.Build();
    }

    private static IReadOnlyList<TensorValue> Inputs(long[] shape) =>
        [TensorValue.Float("X", shape, RandomFloats(new Random(9), shape.Aggregate(1L, (p, d) => p * d)))];

    private static void AssertEquivalent(ModelProto original, ModelProto result, long[] xShape, string what)
    {
        var inputs = Inputs(xShape);
        var expected = OrtRunner.RunOnce(original, inputs);
        var actual = OrtRunner.RunOnce(result, inputs, new OrtRunOptions { Configure = OnnxDeconvSessionOptions.ConfigureFor(result) });
        AssertClose(expected[0], actual.Single(a => a.Name == expected[0].Name), what);
    }

    private static bool UsesPlugin(ModelProto m) => OnnxDeconvSessionOptions.UsesPlugin(m);

    [Theory]
    [InlineData(AutoTuner.PortableCombined)]
    [InlineData(AutoTuner.PortablePerPhase)]
    [InlineData(AutoTuner.Plugin)]
    public void ScriptedWinner_IsChosen_AndTheResultMatchesTheOriginal(string winner)
    {
        var model = Model();
        var timer = ScriptedTimer.Prefer(winner);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });

        var report = Assert.Single(result.Nodes);
        Assert.True(report.Rewritten, report.Reason);
        Assert.Equal(winner, report.Choice);
        Assert.False(report.Cached);
        // Every candidate was built, checked and timed side by side with the unchanged node.
        Assert.Equal([AutoTuner.Unchanged, AutoTuner.PortableCombined, AutoTuner.PortablePerPhase, AutoTuner.Plugin],
            report.Candidates!.Select(c => c.Label));
        Assert.All(report.Candidates!, c => Assert.NotNull(c.MedianMs));
        Assert.Equal(winner == AutoTuner.Plugin, UsesPlugin(result.Model));
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);
        Assert.NotNull(result.WholeModel);
        Assert.Empty(result.WholeModel!.Reverted);
        AssertEquivalent(model, result.Model, [1, 3, 5, 5], winner);
    }

    /// <summary>X ─ ConvTranspose (→ H) ─ <paramref name="act"/> (→ Y); with <paramref name="alsoOutput"/>, H is a graph output too.</summary>
    private static ModelProto WithActivation(string act, bool alsoOutput = false)
    {
        var rng = new Random(5);
        var mb = new ModelBuilder("act", 17, 8);
        mb.Input("X", [1, 3, 5, 5]);
        mb.Initializer("W", [3, 4, 3, 3], RandomFloats(rng, 3 * 4 * 9));
        mb.Initializer("B", [4], RandomFloats(rng, 4));
        var attrs = ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] });
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"], attrs, output: "H", name: "up");
        string[] inputs = ["H"];
        if (act == Ops.Clip.OpType)
        {
            mb.Initializer("lo", [], [-0.25f]);
            mb.Initializer("hi", [], [0.5f]);
            inputs = ["H", "lo", "hi"];
        }
        mb.Node(act, inputs, output: "Y", name: "act");
        mb.Output("Y", null);
        if (alsoOutput) mb.Output("H", null);
        return mb.Build();
    }

    [Theory]
    [InlineData("Relu")]
    [InlineData("Clip")]
    public void IsolatedTiming_IncludesTheFusableActivation_EveryCandidateAsItWillRun(string act)
    {
        var model = WithActivation(act);
        var timed = new List<TimedModel>();
        var timer = new ScriptedTimer((subject, m) =>
        {
            if (subject != "whole model") timed.Add(m);
            return subject == "whole model" ? (m.Label == "original" ? 2 : 1) : m.Label == AutoTuner.Plugin ? 1 : 10;
        });
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });

        Assert.Equal(AutoTuner.Plugin, Assert.Single(result.Nodes).Choice);
        Assert.Equal([AutoTuner.Unchanged, AutoTuner.PortableCombined, AutoTuner.PortablePerPhase, AutoTuner.Plugin], timed.Select(t => t.Label));
        foreach (var t in timed)
        {
            var m = ModelIO.Parse(t.Model, t.Label);
            Assert.Equal("Y", Assert.Single(m.Graph.Output).Name);
            // The plugin fuses the activation into its epilogue; the others run it as a node after the lowering.
            if (t.Label == AutoTuner.Plugin)
                Assert.Equal([Ops.TransposedConv.OpType], m.Graph.Node.Select(n => n.OpType));
            else
                Assert.Equal(act, m.Graph.Node.Last().OpType);
        }
        AssertEquivalent(model, result.Model, [1, 3, 5, 5], act);
    }

    [Fact]
    public void IsolatedTiming_ActivationNotSoleConsumer_TimesTheNodeAlone()
    {
        // H is also a graph output: the plugin cannot fuse the Relu, so the node is timed without it.
        var model = WithActivation(Ops.Relu.OpType, alsoOutput: true);
        var timed = new List<TimedModel>();
        var timer = new ScriptedTimer((subject, m) =>
        {
            if (subject != "whole model") timed.Add(m);
            return subject == "whole model" ? (m.Label == "original" ? 2 : 1) : m.Label == AutoTuner.Plugin ? 1 : 10;
        });
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });

        Assert.NotEmpty(timed);
        foreach (var t in timed)
        {
            var m = ModelIO.Parse(t.Model, t.Label);
            Assert.Equal("H", Assert.Single(m.Graph.Output).Name);
            Assert.DoesNotContain(m.Graph.Node, n => n.OpType == Ops.Relu.OpType);
        }
        AssertEquivalent(model, result.Model, [1, 3, 5, 5], "relu not fused");
    }

    [Fact]
    public void NoCandidateFasterByTheMargin_NodeStaysUnchanged_ModelByteIdentical()
    {
        var model = Model();
        var before = ModelIO.Serialize(model);
        // 2% faster than the unchanged node: within the noise margin (3%), so not worth a rewrite.
        var timer = new ScriptedTimer((_, m) => m.Label == AutoTuner.Unchanged ? 1.0 : 0.98);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        var report = Assert.Single(result.Nodes);
        Assert.False(report.Rewritten);
        Assert.Equal(AutoTuner.Unchanged, report.Choice);
        Assert.Contains("3% faster", report.Reason);
        Assert.Equal(before, ModelIO.Serialize(result.Model));
        Assert.DoesNotContain(timer.Calls, c => c.Subject == "whole model"); // nothing changed: nothing to compare
    }

    [Fact]
    public void PortableOnly_NeverTimesNorPicksThePlugin()
    {
        var model = Model();
        var timer = ScriptedTimer.Prefer(AutoTuner.Plugin); // the plugin would win by far
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, PortableOnly = true, Timer = timer });
        var report = Assert.Single(result.Nodes);
        Assert.NotEqual(AutoTuner.Plugin, report.Choice);
        Assert.All(timer.Calls, c => Assert.DoesNotContain(AutoTuner.Plugin, c.Labels));
        Assert.False(UsesPlugin(result.Model));
        Assert.Contains(report.Candidates!, c => c.Label == AutoTuner.Plugin && c.MedianMs is null && c.Note!.Contains("portable-only"));
    }

    [Fact]
    public void UnsupportedNode_StaysByteIdentical_NothingTimed()
    {
        var attrs = new ConvTransposeAttributes { Strides = [2, 2] };
        var model = SingleNode(attrs, [1, 2, 4, 4], [2, 3, 3, 3], [], null, weightsAsInput: true);
        var before = ModelIO.Serialize(model);
        var timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        var report = Assert.Single(result.Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("'W'", report.Reason);
        Assert.Empty(timer.Calls);
        Assert.Equal(before, ModelIO.Serialize(result.Model));
    }

    [Fact]
    public void CacheHit_SkipsTiming_SameChoice_ReportSaysCached()
    {
        var model = Model();
        var first = ScriptedTimer.Prefer(AutoTuner.PortablePerPhase);
        var r1 = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = first, Cache = new DecisionCache(_cacheDir) });
        Assert.Equal(1, first.NodeCalls);
        Assert.True(File.Exists(Path.Combine(_cacheDir, DecisionCache.FileName)));

        // A timer that would pick another candidate: the cache, not the timer, decides.
        var second = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var r2 = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = second, Cache = new DecisionCache(_cacheDir) });
        // Nothing timed at all: the node's decision and the whole-model comparison of the same two models are cached.
        Assert.Empty(second.Calls);
        Assert.False(r1.WholeModel!.Cached);
        Assert.True(r2.WholeModel!.Cached);
        var report = Assert.Single(r2.Nodes);
        Assert.True(report.Cached);
        Assert.Equal(AutoTuner.PortablePerPhase, report.Choice);
        Assert.Equal(r1.Nodes[0].Candidates, report.Candidates);
        Assert.Equal(ModelIO.Serialize(r1.Model), ModelIO.Serialize(r2.Model));
    }

    [Fact]
    public void CacheKey_DependsOnThreads_OtherThreadCountTimesAgain()
    {
        var model = Model();
        Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Threads = 1, Timer = ScriptedTimer.Prefer(AutoTuner.Plugin), Cache = new DecisionCache(_cacheDir) });
        var other = ScriptedTimer.Prefer(AutoTuner.Plugin);
        var r = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Threads = 2, Timer = other, Cache = new DecisionCache(_cacheDir) });
        Assert.Equal(1, other.NodeCalls);
        Assert.False(r.Nodes[0].Cached);
    }

    [Fact]
    public void NoCache_TimesEveryRun()
    {
        var model = Model();
        for (int i = 0; i < 2; i++)
        {
            var timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
            var r = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer, Cache = null });
            Assert.Equal(1, timer.NodeCalls);
            Assert.False(r.Nodes[0].Cached);
        }
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("{\"version\": 99, \"entries\": {}}")]
    [InlineData("{\"version\": 1, \"entries\": {\"k\": {\"choice\": null, \"candidates\": null}}}")]
    public void CorruptCache_IsIgnoredWithAWarning_AndReplaced(string content)
    {
        File.WriteAllText(Path.Combine(_cacheDir, DecisionCache.FileName), content);
        var model = Model();
        var timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var r = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer, Cache = new DecisionCache(_cacheDir) });
        Assert.Equal(1, timer.NodeCalls);
        Assert.Equal(AutoTuner.PortableCombined, r.Nodes[0].Choice);
        Assert.Contains(r.Warnings, w => w.Contains("decision cache") && w.Contains("ignored"));

        // The decision was written over the corrupt file: the next run hits.
        var again = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var r2 = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = again, Cache = new DecisionCache(_cacheDir) });
        Assert.Equal(0, again.NodeCalls);
        Assert.Empty(r2.Warnings);
    }

    [Fact]
    public void WholeModelSlower_RevertsTheLeastGainFirst_UntilNotSlower()
    {
        var model = TwoNodes();
        // Per node: both portable-perphase; "first" saves 5 ms, "second" 1 ms. Whole model: slower while "second" is rewritten.
        var timer = new ScriptedTimer((subject, m) =>
        {
            if (subject == "whole model")
            {
                if (m.Label == "original") return 1.0;
                var g = ModelIO.Parse(m.Model, "candidate").Graph;
                bool secondLowered = !g.Node.Any(n => n.OpType == Ops.ConvTranspose.OpType && n.Output[0] == "Y");
                return secondLowered ? 2.0 : 0.5;
            }
            bool first = subject.Contains("first");
            return m.Label == AutoTuner.Unchanged ? 10 : m.Label == AutoTuner.PortablePerPhase ? (first ? 5 : 9) : 20;
        });
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });

        var first = result.Nodes.Single(n => n.Node.Contains("first"));
        var second = result.Nodes.Single(n => n.Node.Contains("second"));
        Assert.True(first.Rewritten);
        Assert.Equal(AutoTuner.PortablePerPhase, first.Choice);
        Assert.False(second.Rewritten);
        Assert.Contains("reverted", second.Reason);
        Assert.Equal([second.Node], result.WholeModel!.Reverted);
        Assert.False(result.WholeModel.ReturnedOriginal);
        Assert.Contains(result.Warnings, w => w.Contains("slower") && w.Contains("second"));
        Assert.Single(result.Model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType && n.Output[0] == "Y");
        AssertEquivalent(model, result.Model, [1, 2, 4, 4], "first lowered, second reverted");
    }

    [Fact]
    public void WholeModelAlwaysSlower_ReturnsTheOriginal_ByteIdentical()
    {
        var model = TwoNodes();
        var before = ModelIO.Serialize(model);
        var timer = new ScriptedTimer((subject, m) =>
            subject == "whole model" ? (m.Label == "original" ? 1.0 : 1.5) : m.Label == AutoTuner.PortableCombined ? 1 : 10);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        Assert.False(result.Changed);
        Assert.True(result.WholeModel!.ReturnedOriginal);
        Assert.Equal(2, result.WholeModel.Reverted.Count);
        Assert.All(result.Nodes, n => Assert.Contains("reverted", n.Reason));
        Assert.Equal(before, ModelIO.Serialize(result.Model));
    }

    /// <summary>X ─ Resize(nearest ×2) "up" ─ Conv "conv" (k3, → H) ─ ConvTranspose "second" (→ Y); the pre-pass makes up+conv a ConvTranspose.</summary>
    private static ModelProto ResizeConvThenConvTranspose()
    {
        var rng = new Random(5);
        var mb = new ModelBuilder("resize_conv_ct", 17, 8);
        mb.Input("X", [1, 2, 4, 4]);
        string scales = mb.Initializer("scales", [4], [1f, 1f, 2f, 2f]);
        mb.Initializer("Wc", [3, 2, 3, 3], RandomFloats(rng, 54));
        mb.Initializer("W2", [3, 2, 4, 4], RandomFloats(rng, 96));
        mb.Node(Ops.Resize.OpType, ["X", "", scales],
            [Attributes.String(Ops.Resize.Mode, "nearest"), Attributes.String(Ops.Resize.CoordinateTransformationMode, "asymmetric"),
             Attributes.String(Ops.Resize.NearestMode, "floor")], output: "U", name: "up");
        mb.Node(Ops.Conv.OpType, ["U", "Wc"], [Attributes.Ints(Ops.Conv.KernelShape, [3, 3]), Attributes.Ints(Ops.Conv.Pads, [1, 1, 1, 1])], output: "H", name: "conv");
        var a2 = ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] });
        mb.Node(Ops.ConvTranspose.OpType, ["H", "W2"], a2, output: "Y", name: "second");
        mb.Output("Y", null);
        return mb.Build();
    }

    private static bool HasResize(ModelProto m) => m.Graph.Node.Any(n => n.OpType == Ops.Resize.OpType);

    [Fact]
    public void DerivedConvTranspose_OriginalResizeConvFastest_KeepsTheOriginalNodes_OtherNodeStillLowered()
    {
        var model = ResizeConvThenConvTranspose();
        // The Resize+Conv pattern: the original pair wins. The user's own ConvTranspose: the plugin wins.
        var timer = new ScriptedTimer((subject, m) => subject == "whole model" ? (m.Label == "original" ? 2 : 1)
            : subject.Contains("second") ? (m.Label == AutoTuner.Plugin ? 1 : 10)
            : m.Label == AutoTuner.Unchanged ? 1 : 10);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });

        // The pattern's candidates: the original pair as "unchanged", the derived ConvTranspose, and its lowerings.
        var patternCall = timer.Calls.Single(c => c.Subject != "whole model" && !c.Subject.Contains("second"));
        Assert.Equal([AutoTuner.Unchanged, AutoTuner.DerivedConvTranspose], patternCall.Labels.Take(2));
        var pair = Assert.Single(result.Nodes, n => n.Pattern == "Resize+Conv");
        Assert.False(pair.Rewritten);
        Assert.Equal(AutoTuner.Unchanged, pair.Choice);
        Assert.Contains("original Resize+Conv", pair.Reason);
        Assert.Equal(AutoTuner.Plugin, result.Nodes.Single(n => n.Node.Contains("second")).Choice);
        Assert.True(HasResize(result.Model));
        Assert.Contains(result.Model.Graph.Node, n => n.OpType == Ops.Conv.OpType && n.Output[0] == "H");
        Assert.True(UsesPlugin(result.Model));
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);
        AssertEquivalent(model, result.Model, [1, 2, 4, 4], "original pair kept, second on the plugin");
    }

    [Theory]
    [InlineData(AutoTuner.DerivedConvTranspose)]
    [InlineData(AutoTuner.PortablePerPhase)]
    public void DerivedConvTranspose_ACandidateBeatsTheOriginalPair_ReplacesIt(string winner)
    {
        var model = ResizeConvThenConvTranspose();
        var timer = new ScriptedTimer((subject, m) => subject == "whole model" ? (m.Label == "original" ? 2 : 1)
            : subject.Contains("second") ? (m.Label == AutoTuner.Unchanged ? 1 : 10)
            : m.Label == winner ? 1 : 10);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        var pair = Assert.Single(result.Nodes, n => n.Pattern.StartsWith("Resize+Conv", StringComparison.Ordinal) && n.Rewritten);
        Assert.False(HasResize(result.Model));
        Assert.Equal(winner == AutoTuner.DerivedConvTranspose ? 2 : 1, result.Model.Graph.Node.Count(n => n.OpType == Ops.ConvTranspose.OpType));
        Assert.Contains(result.Nodes, n => n.Choice == winner);
        Assert.NotNull(pair.Lowering);
        AssertEquivalent(model, result.Model, [1, 2, 4, 4], winner);
    }

    [Fact]
    public void WholeModelSlower_RevertsTheDerivedPatternToTheOriginalPair_KeepsTheOtherNodesWin()
    {
        var model = ResizeConvThenConvTranspose();
        // Per node the plugin wins both (the pair saves less); whole model: slower while the pair is replaced.
        var timer = new ScriptedTimer((subject, m) =>
        {
            if (subject == "whole model")
                return m.Label == "original" ? 1.0 : HasResize(ModelIO.Parse(m.Model, "candidate")) ? 0.5 : 2.0;
            bool pattern = !subject.Contains("second");
            return m.Label == AutoTuner.Plugin ? (pattern ? 9 : 5) : 10;
        });
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });

        Assert.False(result.WholeModel!.ReturnedOriginal);
        Assert.Single(result.WholeModel.Reverted);
        Assert.True(HasResize(result.Model));
        Assert.True(UsesPlugin(result.Model));
        var pair = Assert.Single(result.Nodes, n => n.Pattern == "Resize+Conv");
        Assert.False(pair.Rewritten);
        Assert.Contains("reverted", pair.Reason);
        Assert.Contains(result.Warnings, w => w.Contains("the original Resize+Conv"));
        Assert.True(result.Nodes.Single(n => n.Node.Contains("second")).Rewritten);
        AssertEquivalent(model, result.Model, [1, 2, 4, 4], "pair reverted, second on the plugin");
    }

    [Fact]
    public void DerivedConvTranspose_OriginalPairFastestEverywhere_ModelByteIdentical()
    {
        var model = ResizeConvThenConvTranspose();
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = ScriptedTimer.Prefer(AutoTuner.Unchanged) });
        Assert.False(result.Changed);
        Assert.Equal(before, ModelIO.Serialize(result.Model));
    }

    /// <summary>X ─ ConvTranspose "ct" (→ Z) ─ BatchNormalization "bn" (→ Y); the pre-pass folds bn into ct.</summary>
    private static ModelProto ConvTransposeBatchNorm()
    {
        var rng = new Random(7);
        var mb = new ModelBuilder("ct_bn", 17, 8);
        mb.Input("X", [1, 2, 4, 4]);
        mb.Initializer("W", [2, 3, 3, 3], RandomFloats(rng, 54));
        mb.Initializer("scale", [3], RandomFloats(rng, 3));
        mb.Initializer("bias", [3], RandomFloats(rng, 3));
        mb.Initializer("mean", [3], RandomFloats(rng, 3));
        mb.Initializer("var", [3], [0.5f, 1.5f, 2f]);
        var a = ConvTransposeNode.ToAttributes(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] });
        mb.Node(Ops.ConvTranspose.OpType, ["X", "W"], a, output: "Z", name: "ct");
        mb.Node(Ops.BatchNormalization.OpType, ["Z", "scale", "bias", "mean", "var"], [], output: "Y", name: "bn");
        mb.Output("Y", null);
        return mb.Build();
    }

    [Theory]
    [InlineData(AutoTuner.Unchanged)]
    [InlineData(AutoTuner.Plugin)]
    public void FoldedBatchNorm_TimedAgainstTheOriginalPair_KeptOrReplacedAsTheTimerSays(string winner)
    {
        var model = ConvTransposeBatchNorm();
        var before = ModelIO.Serialize(model);
        var timer = ScriptedTimer.Prefer(winner);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        var call = timer.Calls.Single(c => c.Subject != "whole model");
        Assert.Equal([AutoTuner.Unchanged, AutoTuner.DerivedConvTranspose], call.Labels.Take(2));
        bool bnLeft = result.Model.Graph.Node.Any(n => n.OpType == Ops.BatchNormalization.OpType);
        if (winner == AutoTuner.Unchanged)
        {
            Assert.True(bnLeft);
            Assert.Equal(before, ModelIO.Serialize(result.Model));
        }
        else
        {
            Assert.False(bnLeft);
            Assert.True(UsesPlugin(result.Model));
            AssertEquivalent(model, result.Model, [1, 2, 4, 4], "ConvTranspose+BN on the plugin");
        }
    }

    [Theory]
    [InlineData(AutoTuner.Unchanged)]
    [InlineData(AutoTuner.DerivedConvTranspose)]
    public void ZeroInsertionConv_TimedAgainstTheOriginalChain_KeptOrReplacedAsTheTimerSays(string winner)
    {
        // x[1,16,16,16] ─ Reshape/Pad/Reshape (zero insertion) ─ Pad ─ Conv: the pre-pass makes it one ConvTranspose.
        var model = ModelIO.Load(Path.Combine(OnnxDeconv.TestSupport.RepoPaths.DemoModels, "upfirdn_zero_insertion.onnx"));
        var before = ModelIO.Serialize(model);
        var timer = ScriptedTimer.Prefer(winner);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        var call = timer.Calls.Single(c => c.Subject != "whole model");
        Assert.Equal([AutoTuner.Unchanged, AutoTuner.DerivedConvTranspose], call.Labels.Take(2));
        if (winner == AutoTuner.Unchanged)
        {
            Assert.Equal(before, ModelIO.Serialize(result.Model));
            Assert.All(result.Nodes, n => Assert.False(n.Rewritten));
            return;
        }
        var only = Assert.Single(result.Model.Graph.Node);
        Assert.Equal(Ops.ConvTranspose.OpType, only.OpType);
        var x = result.Model.Graph.Input[0];
        long[] shape = [.. x.Type.TensorType.Shape.Dim.Select(d => d.DimValue)];
        var inputs = new[] { TensorValue.Float(x.Name, shape, RandomFloats(new Random(9), shape.Aggregate(1L, (p, d) => p * d))) };
        var expected = OrtRunner.RunOnce(model, inputs);
        var actual = OrtRunner.RunOnce(result.Model, inputs);
        AssertClose(expected[0], actual[0], "zero insertion as the derived ConvTranspose");
    }

    [Fact]
    public void BrokenGraph_TwoNodesWritingTheSameOutput_DecidedPerNode_NoException()
    {
        // Not a valid ONNX graph (ONNX Runtime refuses it), but each node alone is: every decision is still per node,
        // and the whole-model comparison, which cannot run, becomes a warning.
        var model = Model();
        var copy = model.Graph.Node[0].Clone();
        copy.Name = "twin";
        model.Graph.Node.Add(copy);
        var timer = ScriptedTimer.Prefer(AutoTuner.PortableCombined);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        Assert.Equal(2, result.Nodes.Count);
        Assert.All(result.Nodes, n => Assert.Equal(AutoTuner.PortableCombined, n.Choice));
        Assert.Contains(result.Warnings, w => w.Contains("whole model not timed"));
    }

    [Fact]
    public void RealTimer_SmallModel_ChoiceVerified_CandidatesTimed()
    {
        var model = Model();
        var result = Optimizer.Run(model, new OptimizeOptions
        {
            Target = Target.Auto, Threads = 1, NodeBudget = TimeSpan.FromMilliseconds(20),
        });
        var report = Assert.Single(result.Nodes);
        Assert.Equal(4, report.Candidates!.Count);
        Assert.All(report.Candidates!, c => Assert.True(c.MedianMs > 0, $"{c.Label}: {c.Note}"));
        Assert.Contains(report.Choice, report.Candidates!.Select(c => c.Label));
        AssertEquivalent(model, result.Model, [1, 3, 5, 5], $"auto chose {report.Choice}");
    }
}
