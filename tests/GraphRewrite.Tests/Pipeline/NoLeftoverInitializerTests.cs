using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;
using BN = OnnxDeconv.GraphRewrite.Ops.BatchNormalization;

namespace OnnxDeconv.GraphRewrite.Tests.Pipeline;

// Issue 16 item 6: a saved model never holds an initializer no node reads unless the input model did, on every target
// and every path auto takes (a node rewritten, the user's pattern restored, the whole model returned as it was).
// Outputs are compared through ONNX Runtime at |a-b| <= 1e-5 + 1e-4*|b|.
public sealed class NoLeftoverInitializerTests
{
    /// <summary>
    /// Two X -> ConvTranspose -> BatchNormalization -> Relu blocks ("first", "second"; the fold pre-pass makes new weights
    /// for each), optionally with an initializer nobody reads.
    /// </summary>
    private static ModelProto ConvTransposeBnRelu(bool withUnusedInput)
    {
        var rng = new Random(5);
        var mb = new ModelBuilder("ct_bn_relu", 17, irVersion: 8);
        mb.Input("x", [1, 4, 5, 5]);
        string v = "x";
        foreach (var (name, cin, cout) in new[] { ("first", 4L, 6L), ("second", 6L, 3L) })
        {
            string w = mb.Initializer($"{name}_w", [cin, cout, 4, 4], RandomFloats(rng, cin * cout * 16));
            string b = mb.Initializer($"{name}_b", [cout], RandomFloats(rng, cout));
            var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] };
            string y = mb.Node(Ops.ConvTranspose.OpType, [v, w, b], ConvTransposeNode.ToAttributes(attrs), name: name);
            var stats = new[] { "gamma", "beta", "mean", "var" }.Select((n, i) =>
                mb.Initializer($"{name}_{n}", [cout], RandomFloats(rng, cout).Select(f => i == 3 ? 0.1f + Math.Abs(f) : f).ToArray())).ToList();
            string bn = mb.Node(BN.OpType, [y, .. stats], [Attributes.Float(BN.Epsilon, 1e-3f)], name: $"{name}_bn");
            v = mb.Node(Ops.Relu.OpType, [bn], [], output: name == "second" ? "y" : null, name: $"{name}_relu");
        }
        mb.Output("y", null);
        if (withUnusedInput) mb.Initializer("stale", [3], [1f, 2f, 3f]);
        return mb.Build();
    }

    private static string[] Unread(ModelProto m) => Optimizer.UnreadConstants(m).Order(StringComparer.Ordinal).ToArray();

    private static TensorValue Input(ModelProto m)
    {
        var rng = new Random(11);
        var shape = m.Graph.Input[0].Type.TensorType.Shape.Dim.Select(d => d.DimValue).ToArray();
        return TensorValue.Float(m.Graph.Input[0].Name, shape, RandomFloats(rng, Tensors.ElementCount(shape)));
    }

    public static TheoryData<string> Paths() => new()
    {
        "portable", "plugin", "convtranspose",
        "auto: " + AutoTuner.PortableCombined, "auto: " + AutoTuner.Plugin,
        "auto: " + AutoTuner.Unchanged,          // every node as the user wrote it: the original returned
        "auto: mixed",                           // "first" rewritten, "second"'s ConvTranspose+BatchNormalization restored
        "auto: whole model slower",              // every node reverted, the original returned
    };

    private static OptimizeOptions Options(string path) => path switch
    {
        "portable" => new() { Target = Target.Portable },
        "plugin" => new() { Target = Target.Plugin },
        "convtranspose" => new() { Target = Target.ConvTranspose },
        "auto: whole model slower" => new()
        {
            Target = Target.Auto,
            Timer = new ScriptedTimer((subject, m) => subject == "whole model" ? (m.Label == "original" ? 1 : 5) : m.Label == AutoTuner.PortableCombined ? 1 : 10),
        },
        "auto: mixed" => new()
        {
            Target = Target.Auto,
            Timer = new ScriptedTimer((subject, m) => subject == "whole model" ? (m.Label == "original" ? 2 : 1)
                : m.Label == (subject.Contains("second") ? AutoTuner.Unchanged : AutoTuner.PortableCombined) ? 1 : 10),
        },
        _ => new() { Target = Target.Auto, Timer = ScriptedTimer.Prefer(path["auto: ".Length..]) },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void EveryPath_LeavesNoInitializerUnread_AndMatchesOriginal(string path)
    {
        var model = ConvTransposeBnRelu(withUnusedInput: false);
        var result = Optimizer.Run(model, Options(path));
        if (path == "auto: mixed")
        {
            Assert.Contains(result.Model.Graph.Node, n => n.Name == "second_bn"); // the restore path was taken
            Assert.DoesNotContain(result.Model.Graph.Node, n => n.Name == "first_bn");
        }
        Assert.Empty(Unread(result.Model));
        var expected = OrtRunner.RunOnce(model, [Input(model)]);
        var actual = OrtRunner.RunOnce(result.Model, [Input(model)], new OrtRunOptions
        {
            Configure = so => { if (OnnxDeconvSessionOptions.UsesPlugin(result.Model)) so.RegisterOnnxDeconv(); },
        });
        AssertClose(Assert.Single(expected), Assert.Single(actual), path);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void AnInitializerTheInputLeftUnread_IsKept(string path)
    {
        // Not ours to remove: the tool removes only what its own rewrite left unused.
        var model = ConvTransposeBnRelu(withUnusedInput: true);
        var result = Optimizer.Run(model, Options(path));
        Assert.Equal(["stale"], Unread(result.Model));
    }

    [Fact]
    public void DcganDemo_AutoKeepingTheUsersPatterns_LeavesNoFoldedWeightsBehind()
    {
        // The DCGAN demo's ConvTranspose+BatchNormalization kept by auto: the folded weights must not stay behind
        // (they grew the file from 1.52 to 2.04 MB and ONNX Runtime warned "Removing initializer ...").
        // The first node timed is rewritten (so the model is not returned as it was), every other one kept.
        var model = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx"));
        string? first = null;
        var timer = new ScriptedTimer((subject, m) =>
        {
            if (subject == "whole model") return m.Label == "original" ? 2 : 1;
            first ??= subject;
            return m.Label == (subject == first ? AutoTuner.PortableCombined : AutoTuner.Unchanged) ? 1 : 10;
        });
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Auto, Timer = timer });
        Assert.Contains(result.Nodes, n => n.Rewritten);
        Assert.Contains(result.Model.Graph.Node, n => n.OpType == BN.OpType);
        Assert.Empty(Unread(result.Model));
        Assert.True(ModelIO.Serialize(result.Model).Length <= new FileInfo(Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx")).Length * 11 / 10,
            "the kept blocks carry their original weights only");
    }

    [Fact]
    public void DropLeftovers_RemovesOnlyWhatTheRewriteLeftUnread()
    {
        var model = ConvTransposeBnRelu(withUnusedInput: true);
        var changed = model.Clone();
        changed.Graph.Initializer.Add(Tensors.FromFloats("orphan", [1], [0f]));
        var kept = Optimizer.DropLeftovers(model, new OptimizeResult(changed, []));
        Assert.DoesNotContain(kept.Model.Graph.Initializer, t => t.Name == "orphan");
        Assert.Contains(kept.Model.Graph.Initializer, t => t.Name == "stale");
    }
}
