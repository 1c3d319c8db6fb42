using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.GraphRewrite.Tests.ResizeConv.ResizeConvModels;
using C = OnnxDeconv.GraphRewrite.Ops.Conv;
using R = OnnxDeconv.GraphRewrite.Ops.Resize;

namespace OnnxDeconv.GraphRewrite.Tests.ResizeConv;

/// <summary>
/// The Resize/Upsample + Conv → ConvTranspose rewrite: the derived kernel, the exactness proof of each accepted resize
/// mode against ONNX Runtime, refusals (byte-identical models), shared Resize outputs and the ESRGAN demo model.
/// Numeric checks: |a-b| &lt;= 1e-5 + 1e-4*|b| (float32), ONNX Runtime with ORT_DISABLE_ALL.
/// </summary>
public class ResizeConvRewriteTests
{
    private static ResizeConvCase Base(UpsampleForm form = UpsampleForm.Resize19, string ctm = "asymmetric", string nearest = "floor") =>
        new(form, 1, [3, 4], [2, 2], [3, 3], [1, 1, 1, 1], 2, 3, 1, true, ctm, nearest);

    [Fact]
    public void DeriveWeights_K3S2Pad1_IsConvTransposeK4WithWindowSums()
    {
        // DESIGN.md: nearest x2 then Conv k3 p1 is ConvTranspose(k4, s2, p1) with W' = [w2, w1+w2, w0+w1, w0].
        float w0 = 0.5f, w1 = -2f, w2 = 3f;
        var derived = ResizeConvToConvTranspose.DeriveWeights([w0, w1, w2], [1, 1, 3], 1, [2]);
        Assert.Equal([w2, w1 + w2, w0 + w1, w0], derived);

        var c = new ResizeConvCase(UpsampleForm.Resize19, 1, [5], [2], [3], [1, 1], 1, 1, 1, false, "asymmetric", "floor");
        var model = Build(c);
        var index = new GraphIndex(model);
        var pair = Assert.Single(ResizeConvPair.FindAll(index));
        Assert.True(ResizeConvToConvTranspose.TryMatch(index, pair, out var match, out var reason), reason);
        Assert.Equal([4L], match!.KernelShape);
        Assert.Equal([2L], match.Strides);
        Assert.Equal([1L, 1], match.Pads);
        Assert.Equal([1L, 1, 4], match.WeightShape);
    }

    [Fact]
    public void DeriveWeights_GroupedConv_TransposesChannelsWithinEachGroup()
    {
        // Conv W [Cout=4, Cin/g=1, 1] with group 2 (Cin = 2): ConvTranspose W' [Cin=2, Cout/g=2, 1] (k1, s1 keeps values).
        var derived = ResizeConvToConvTranspose.DeriveWeights([1f, 2f, 3f, 4f], [4, 1, 1], 2, [1]);
        // W'[ci=0] = (co 0, co 1) of group 0; W'[ci=1] = (co 2, co 3) of group 1.
        Assert.Equal([1f, 2f, 3f, 4f], derived);
        var ungrouped = ResizeConvToConvTranspose.DeriveWeights([1f, 2f, 3f, 4f, 5f, 6f], [3, 2, 1], 1, [1]);
        // Conv W[co][ci] -> W'[ci][co].
        Assert.Equal([1f, 3f, 5f, 2f, 4f, 6f], ungrouped);
    }

    public static IEnumerable<object[]> AcceptedModes()
    {
        foreach (var form in new[] { UpsampleForm.Resize19, UpsampleForm.Resize18Axes, UpsampleForm.Resize13Sizes, UpsampleForm.Resize11 })
            foreach (var m in ExactModes)
                foreach (var (sh, sw) in new[] { (2L, 2L), (3L, 2L), (4L, 3L) })
                    if (m[1] != "round_prefer_floor" || m[0] != "asymmetric" || (sh == 2 && sw == 2))
                        yield return [form, m[0], m[1], sh, sw];
        foreach (var form in new[] { UpsampleForm.Resize10, UpsampleForm.Upsample9, UpsampleForm.Upsample7 })
            foreach (var (sh, sw) in new[] { (2L, 2L), (3L, 2L), (4L, 3L) })
                yield return [form, "asymmetric", "floor", sh, sw];
    }

    [Theory]
    [MemberData(nameof(AcceptedModes))]
    public void AcceptedResizeMode_IsExactRepetitionInOnnxRuntime(UpsampleForm form, string ctm, string nearest, long sh, long sw)
    {
        // Proof by ground truth: the matcher accepts the mode, and ONNX Runtime's Resize alone gives u[j] = x[floor(j/s)].
        var c = new ResizeConvCase(form, 1, [3, 5], [sh, sw], [1, 1], [0, 0, 0, 0], 1, 1, 1, false, ctm, nearest);
        var model = Build(c);
        var pair = Assert.Single(ResizeConvPair.FindAll(new GraphIndex(model), StaticShapes(model)));
        Assert.True(pair.IsIntegerNearestRepetition, pair.RepetitionNote);

        var resizeOnly = model.Clone();
        resizeOnly.Graph.Node.RemoveAt(1);
        resizeOnly.Graph.Output.Clear();
        resizeOnly.Graph.Output.Add(ModelBuilder.ValueInfo("u", TensorProto.Types.DataType.Float, null));
        var ramp = Enumerable.Range(0, 15).Select(i => (float)i).ToArray();
        var u = OrtRunner.RunOnce(resizeOnly, [TensorValue.Float("x", [1, 1, 3, 5], ramp)])[0];
        Assert.Equal([1L, 1, 3 * sh, 5 * sw], u.Dims);
        var expected = new float[3 * sh * 5 * sw];
        for (long i = 0; i < 3 * sh; i++)
            for (long j = 0; j < 5 * sw; j++)
                expected[i * 5 * sw + j] = ramp[i / sh * 5 + j / sw];
        Assert.Equal(expected, u.AsFloats());
    }

    private static Func<string, long[]?> StaticShapes(ModelProto model)
    {
        var index = new GraphIndex(model);
        return v => index.Shape(v);
    }

    [Theory]
    [InlineData("half_pixel", "floor", 2f)]
    [InlineData("half_pixel", "ceil", 2f)]
    [InlineData("asymmetric", "round_prefer_floor", 3f)]
    [InlineData("asymmetric", "round_prefer_ceil", 2f)]
    [InlineData("asymmetric", "ceil", 2f)]
    [InlineData("align_corners", "round_prefer_floor", 3f)]
    [InlineData("tf_half_pixel_for_nn", "round_prefer_floor", 2f)]
    public void RefusedResizeMode_IsIndeedNotRepetitionInOnnxRuntime(string ctm, string nearest, float scale)
    {
        // The refusals are necessary, not just cautious: ONNX Runtime's output differs from x[floor(j/s)].
        var (exact, _) = ResizeConvPair.Repetition("nearest", ctm, nearest, [1f, 1f, 1f, scale]);
        Assert.False(exact);
        var b = new ModelBuilder("resize_only", 19);
        b.Input("x", [1, 1, 1, 7]);
        b.Node(R.OpType, ["x", "", b.Initializer("scales", [4], [1f, 1f, 1f, scale])],
            [Attributes.String(R.Mode, "nearest"), Attributes.String(R.CoordinateTransformationMode, ctm), Attributes.String(R.NearestMode, nearest)], output: "u");
        b.Output("u", null);
        var ramp = Enumerable.Range(0, 7).Select(i => (float)i).ToArray();
        var u = OrtRunner.RunOnce(b.Build(), [TensorValue.Float("x", [1, 1, 1, 7], ramp)])[0].AsFloats();
        int s = (int)scale;
        Assert.False(u.Length == 7 * s && u.Select((v, j) => v == ramp[j / s]).All(x => x));
    }

    public static IEnumerable<object[]> NegativeCases() =>
        new[] { "linear", "cubic", "align_corners", "tf_crop_and_resize", "non-integer scale", "scale on channels", "conv stride 2",
            "conv dilation 3 > scale 2", "resize output is graph output", "pads beyond kernel-1", "weights are a graph input", "antialias",
            "half_pixel+floor", "asymmetric+round_prefer_floor s3", "sizes with symbolic input", "keep_aspect_ratio_policy" }
        .Select(n => new object[] { n });

    private static ModelProto Negative(string name)
    {
        var c = Base();
        ModelProto m;
        NodeProto Node(ModelProto model, string op) => model.Graph.Node.First(n => n.OpType == op);
        void SetAttr(NodeProto node, AttributeProto a)
        {
            var old = node.Attribute.FirstOrDefault(x => x.Name == a.Name);
            if (old is not null) node.Attribute.Remove(old);
            node.Attribute.Add(a);
        }
        switch (name)
        {
            case "linear": return Build(c, mode: "linear");
            case "cubic": return Build(c, mode: "cubic");
            case "align_corners": return Build(c with { Ctm = "align_corners", Nearest = "round_prefer_floor" });
            case "tf_crop_and_resize": return Build(c with { Ctm = "tf_crop_and_resize", Form = UpsampleForm.Resize11 });
            case "non-integer scale": return Build(c, scalesOverride: [1f, 1f, 1.5f, 2f]);
            case "scale on channels": return Build(c, scalesOverride: [1f, 2f, 2f, 2f]);
            case "half_pixel+floor": return Build(c with { Ctm = "half_pixel", Nearest = "floor" });
            case "asymmetric+round_prefer_floor s3": return Build(c with { Ctm = "asymmetric", Nearest = "round_prefer_floor", Scales = [3, 3] });
            case "conv stride 2":
                m = Build(c);
                SetAttr(Node(m, C.OpType), Attributes.Ints(C.Strides, [2, 2]));
                return m;
            case "conv dilation 3 > scale 2":
                m = Build(c);
                SetAttr(Node(m, C.OpType), Attributes.Ints(C.Dilations, [3, 3]));
                return m;
            case "resize output is graph output":
                m = Build(c);
                m.Graph.Output.Add(ModelBuilder.ValueInfo("u", TensorProto.Types.DataType.Float, null));
                return m;
            case "pads beyond kernel-1":
                return Build(c with { Pads = [3, 1, 1, 1] });
            case "weights are a graph input":
                m = Build(c);
                var w = m.Graph.Initializer.First(t => t.Name == "w");
                m.Graph.Initializer.Remove(w);
                m.Graph.Input.Add(ModelBuilder.ValueInfo("w", TensorProto.Types.DataType.Float, [.. w.Dims]));
                return m;
            case "antialias":
                m = Build(c);
                SetAttr(Node(m, R.OpType), Attributes.Int(R.AntiAlias, 1));
                return m;
            case "sizes with symbolic input":
                m = Build(c with { Form = UpsampleForm.Resize13Sizes });
                m.Graph.Input[0] = ModelBuilder.ValueInfo("x", TensorProto.Types.DataType.Float, [1, 2, -1, -1]);
                return m;
            case "keep_aspect_ratio_policy":
                m = Build(c with { Form = UpsampleForm.Resize13Sizes });
                m.OpsetImport[0].Version = 18;
                SetAttr(Node(m, R.OpType), Attributes.String(R.KeepAspectRatioPolicy, "not_larger"));
                return m;
            default: throw new ArgumentException(name);
        }
    }

    [Theory]
    [MemberData(nameof(NegativeCases))]
    public void NotExactPair_IsLeftByteIdentical_WithAReason(string name)
    {
        var model = Negative(name);
        var bytes = ModelIO.Serialize(model);
        foreach (var target in AllTargets)
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var report = Assert.Single(result.Nodes);
            Assert.False(report.Rewritten);
            Assert.Equal("Resize+Conv", report.Pattern);
            Assert.False(string.IsNullOrWhiteSpace(report.Reason), name);
            Assert.Equal(bytes, ModelIO.Serialize(result.Model));
        }
    }

    [Fact]
    public void SharedResizeOutput_ResizeKeptForOtherConsumer_ConvStillFused()
    {
        // 32 -> 32 channels, k3: the 2.25x MAC drop outweighs the bytes every lowering adds (SharedResizeCost).
        var model = Build(Base() with { CinPerGroup = 32, CoutPerGroup = 32 });
        // A Relu also reads the upsampled tensor: the Resize must stay for it.
        var relu = new NodeProto { OpType = Ops.Relu.OpType, Name = "relu" };
        relu.Input.Add("u");
        relu.Output.Add("r");
        model.Graph.Node.Add(relu);
        model.Graph.Output.Add(ModelBuilder.ValueInfo("r", TensorProto.Types.DataType.Float, null));
        // (The convtranspose target keeps this Conv: ONNX Runtime's ConvTranspose fills a Cout*16*HW col2im buffer.)
        foreach (var target in new[] { Target.Portable, Target.Plugin })
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var pair = Assert.Single(result.Nodes, n => n.Pattern == "Resize+Conv");
            Assert.True(pair.Rewritten, pair.Reason);
            Assert.Contains("Resize kept for 1 other consumer(s)", pair.Lowering);
            Assert.Contains("fused although the Resize stays, because it is faster: cost model", pair.Lowering);
            Assert.Single(result.Model.Graph.Node, n => n.OpType == R.OpType);
            Assert.Equal(0, PairsLeft(result.Model));
            var report = Verify(model, result.Model);
            Assert.True(report.Passed, $"[{target}] {Describe(report)}");
        }
    }

    private static ModelProto SharedResizeK1Model()
    {
        // Conv 1x1 8->8 after x2: equal MACs fused or not, so the bytes decide (see SharedResizeCost).
        var model = Build(new ResizeConvCase(UpsampleForm.Resize19, 1, [3, 4], [2, 2], [1, 1], [0, 0, 0, 0], 8, 8, 1, true, "asymmetric", "floor"));
        var relu = new NodeProto { OpType = Ops.Relu.OpType, Name = "relu" };
        relu.Input.Add("u");
        relu.Output.Add("r");
        model.Graph.Node.Add(relu);
        model.Graph.Output.Add(ModelBuilder.ValueInfo("r", TensorProto.Types.DataType.Float, null));
        return model;
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.ConvTranspose)]
    public void SharedResize_K1Conv_NotFusedWhereTheLoweringMovesMoreBytes_ByteIdentical(Target target)
    {
        // Original: the Conv reads U (384 floats) and writes Y (384); fused: reads X (96), writes Y, plus the phase
        // tensor (portable) or col2im buffer (ConvTranspose) written and read again: 768 more. MACs 3072 both ways.
        var model = SharedResizeK1Model();
        var bytes = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        var pair = Assert.Single(result.Nodes, n => n.Pattern == "Resize+Conv");
        Assert.False(pair.Rewritten);
        Assert.Contains("Resize stays for 1 other reader(s) and fusing would be slower", pair.Reason);
        Assert.Contains("MACs 3072 -> 3072, bytes 3072 -> 4992", pair.Reason);
        Assert.Equal(bytes, ModelIO.Serialize(result.Model));
    }

    [Fact]
    public void SharedResize_K1Conv_FusedForThePlugin_WhichWritesYDirectly()
    {
        var model = SharedResizeK1Model();
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Plugin });
        var pair = Assert.Single(result.Nodes, n => n.Pattern == "Resize+Conv");
        Assert.True(pair.Rewritten, pair.Reason);
        Assert.Contains("because it is faster: cost model (plugin)", pair.Lowering);
        Assert.Contains("bytes 3072 -> 1920", pair.Lowering);
        Assert.Single(result.Model.Graph.Node, n => n.OpType == R.OpType);
        var report = Verify(model, result.Model);
        Assert.True(report.Passed, Describe(report));
    }

    [Fact]
    public void ResizeFeedingTwoConvs_BothFused_ResizeAndItsScalesRemoved()
    {
        var model = Build(Base());
        var conv2 = model.Graph.Node.First(n => n.OpType == C.OpType).Clone();
        conv2.Name = "conv2";
        conv2.Output[0] = "y2";
        model.Graph.Node.Add(conv2);
        model.Graph.Output.Add(ModelBuilder.ValueInfo("y2", TensorProto.Types.DataType.Float, null));
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.ConvTranspose });
        Assert.Equal(2, result.Nodes.Count(n => n.Rewritten));
        Assert.Equal(2, result.Model.Graph.Node.Count(n => n.OpType == Ops.ConvTranspose.OpType));
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == R.OpType);
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name is "scales" or "w");
        var report = Verify(model, result.Model);
        Assert.True(report.Passed, Describe(report));
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    [InlineData(Target.ConvTranspose)]
    public void ResizeConvThenBatchNormAndRelu_BatchNormFolded_ReluFusedIntoPluginOnly_Verified(Target target)
    {
        // Resize -> Conv -> BatchNormalization -> Relu: the BN folds into the derived ConvTranspose for every target;
        // the Relu becomes the plugin op's epilogue and stays a node in the standard-op forms.
        var model = Build(Base());
        var rng = new Random(11);
        model.Graph.Initializer.AddRange(new[] { "gamma", "beta", "mean", "var" }.Select((n, i) =>
            Tensors.FromFloats(n, [3], [.. Enumerable.Range(0, 3).Select(_ => (float)rng.NextDouble() + (i == 3 ? 0.5f : -0.5f))])));
        var conv = model.Graph.Node.Single(n => n.OpType == C.OpType);
        conv.Output[0] = "pre_bn";
        model.Graph.Node.Add(new NodeProto { OpType = Ops.BatchNormalization.OpType, Name = "bn", Input = { "pre_bn", "gamma", "beta", "mean", "var" }, Output = { "pre_relu" } });
        model.Graph.Node.Add(new NodeProto { OpType = Ops.Relu.OpType, Name = "relu", Input = { "pre_relu" }, Output = { "y" } });
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        Assert.True(Assert.Single(result.Nodes, n => n.Pattern == "Resize+Conv").Rewritten);
        Assert.Contains(result.Nodes, n => n.Pattern.Contains("BatchNormalization", StringComparison.Ordinal) && n.Rewritten);
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType is "BatchNormalization" or "Resize");
        Assert.Equal(target == Target.Plugin ? 0 : 1, result.Model.Graph.Node.Count(n => n.OpType == Ops.Relu.OpType));
        var report = Verify(model, result.Model, seed: 11);
        Assert.True(report.Passed, Describe(report));
    }

    [Fact]
    public void Report_K3S2_MacsFall225Times()
    {
        var result = Optimizer.Run(Build(Base()), new OptimizeOptions { Target = Target.ConvTranspose });
        var pair = Assert.Single(result.Nodes);
        // Conv k3 p1 on the 6x8 upsampled tensor: 9 taps per output; the ConvTranspose: 16 taps per 4 outputs.
        Assert.Equal(1L * 3 * 2 * 9 * 6 * 8, pair.MacsBefore);
        Assert.Equal(1L * 3 * 2 * 16 * 3 * 4, pair.MacsAfter);
        Assert.Equal(2.25, (double)pair.MacsBefore / pair.MacsAfter);
        Assert.Equal(["up (Resize)", "conv (Conv)"], pair.Nodes!);
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    [InlineData(Target.ConvTranspose)]
    public void EsrganDemoModel_NoResizeConvPairLeft_AndMatchesOriginal(Target target)
    {
        var model = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "esrgan_upsampler.onnx"));
        int pairs = PairsLeft(model);
        Assert.True(pairs >= 1);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
        var fused = result.Nodes.Where(n => n.Pattern == "Resize+Conv").ToList();
        Assert.Equal(pairs, fused.Count);
        Assert.All(fused, n => Assert.True(n.Rewritten, n.Reason));
        Assert.All(fused, n => Assert.Equal(2.25, (double)n.MacsBefore / n.MacsAfter));
        Assert.Equal(0, PairsLeft(result.Model));
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == R.OpType);
        if (target != Target.ConvTranspose)
            Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);
        // Each pair names the ConvTranspose it produced; the lowering's report (if any) is about that node.
        if (target != Target.ConvTranspose)
            Assert.All(fused, n => Assert.Contains(result.Nodes, r => r.Node == n.Produces && r.Pattern.StartsWith(Ops.ConvTranspose.OpType, StringComparison.Ordinal) && r.Rewritten));
        var report = Verify(model, result.Model, seed: 3);
        Assert.True(report.Passed, Describe(report));
    }
}

public class ConvTransposeTargetTests
{
    [Fact]
    public void ConvTransposeTarget_PlainConvTransposeModel_ComesBackByteIdentical()
    {
        // The convtranspose target only rewrites Resize+Conv pairs: an existing ConvTranspose is not lowered.
        var b = new ModelBuilder("ct", 19);
        b.Input("x", [1, 2, 4, 4]);
        b.Initializer("w", [2, 3, 3, 3], ResizeConvModels.Random(new Random(5), 54));
        b.Node(Ops.ConvTranspose.OpType, ["x", "w"], [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2])], output: "y");
        b.Output("y", null);
        var model = b.Build();
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.ConvTranspose });
        Assert.Empty(result.Nodes);
        Assert.False(result.Changed);
        Assert.Equal(ModelIO.Serialize(model), ModelIO.Serialize(result.Model));
    }

    [Fact]
    public void ConvTransposeTarget_ResizeConv_BecomesOneConvTransposeNode()
    {
        var model = ResizeConvModels.Build(new ResizeConvCase(UpsampleForm.Resize19, 1, [4, 4], [2, 3], [3, 2], [1, 0, 2, 1], 2, 2, 1, true,
            "half_pixel", "round_prefer_ceil"));
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.ConvTranspose });
        var node = Assert.Single(result.Model.Graph.Node);
        Assert.Equal(Ops.ConvTranspose.OpType, node.OpType);
        Assert.Equal(["x", node.Input[1], "b"], node.Input.ToArray());
        Assert.Equal([4L, 4], Attributes.GetInts(node, Ops.ConvTranspose.KernelShape)!);
        Assert.Equal([2L, 3], Attributes.GetInts(node, Ops.ConvTranspose.Strides)!);
        // pads K-1-pb / K-1-pe: begins [3-1-1, 2-1-0], ends [3-1-2, 2-1-1].
        Assert.Equal([1L, 1, 0, 0], Attributes.GetInts(node, Ops.ConvTranspose.Pads)!);
        // Resize scales and the Conv weight are gone; only the derived weight and the bias remain.
        Assert.Equal(new[] { node.Input[1], "b" }.Order(), result.Model.Graph.Initializer.Select(t => t.Name).Order());
        var report = ResizeConvModels.Verify(model, result.Model);
        Assert.True(report.Passed, ResizeConvModels.Describe(report));
    }
}
