using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using static OnnxDeconv.GraphRewrite.Tests.HalfPrecision.HalfTestKit;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Tests.HalfPrecision;

/// <summary>
/// The portable target on float16 ConvTranspose nodes: rewritten into float16 Conv + Reshape/Transpose + Slice,
/// equal to the float32 reference rounded to float16 and to ONNX Runtime's run of the original (ORT_DISABLE_ALL),
/// both within the float16 rule |a-b| &lt;= 2^-8 + 2^-9*|b| (Tolerance.ForType).
/// </summary>
public class Float16PortableTests
{
    public static TheoryData<string, int[], int[], int[], int, bool> Geometries => new()
    {
        // name, x shape, w shape, strides (pads/output_padding/dilation/group derived below), group, bias
        { "k4 s2 p1 (DCGAN)", [1, 8, 6, 6], [8, 4, 4, 4], [2, 2], 1, true },
        { "k3 s2 p1 op1", [2, 4, 5, 5], [4, 6, 3, 3], [2, 2], 1, false },
        { "groups, unequal strides", [1, 4, 4, 5], [4, 3, 3, 2], [2, 3], 2, true },
        { "1D k5 s2", [1, 3, 7], [3, 2, 5], [2], 1, true },
        { "3D k2 s2", [1, 2, 3, 3, 2], [2, 3, 2, 2, 2], [2, 2, 2], 1, true },
    };

    private static ConvTransposeAttributes Attrs(string name, int[] strides, int group) => name switch
    {
        "k4 s2 p1 (DCGAN)" => new() { Strides = [2, 2], Pads = [1, 1, 1, 1] },
        "k3 s2 p1 op1" => new() { Strides = [2, 2], Pads = [1, 1, 1, 1], OutputPadding = [1, 1] },
        _ => new() { Strides = strides.Select(s => (long)s).ToArray(), Group = group },
    };

    [Theory]
    [MemberData(nameof(Geometries))]
    public void Float16ConvTranspose_Portable_RewrittenInFloat16_MatchesReferenceAndOriginal(string name, int[] x, int[] w, int[] strides, int group, bool bias)
    {
        var c = SingleNode(Attrs(name, strides, group), x.Select(v => (long)v).ToArray(), w.Select(v => (long)v).ToArray(), bias, seed: 7);
        var result = Optimizer.Run(c.Model, new OptimizeOptions { Target = Target.Portable });
        var report = Assert.Single(result.Nodes);
        Assert.True(report.Rewritten, $"{name}: {report.Reason}");
        var m = result.Model;
        Assert.DoesNotContain(m.Graph.Node, n => n.OpType is "ConvTranspose" or "DepthToSpace" or "Cast");
        // Weights stay in the model's type: no float32 initializer, no Cast added.
        Assert.Empty(FloatInitializers(m));
        Assert.Contains(m.Graph.Initializer, t => t.DataType == (int)DataType.Float16);

        var rewritten = Assert.Single(OrtRunner.RunOnce(m, [c.X]));
        var original = Assert.Single(OrtRunner.RunOnce(c.Model, [c.X]));
        AssertWithinHalfRule(c.Reference, rewritten, $"{name}: rewritten vs float32 reference rounded to float16");
        AssertWithinHalfRule(original, rewritten, $"{name}: rewritten vs ONNX Runtime's original");
        AssertWithinHalfRule(c.Reference, original, $"{name}: ONNX Runtime's original vs reference (the reference itself)");
    }

    [Fact]
    public void Float16Portable_WeightsOnlyRearranged_EveryValueBitIdenticalToAnOriginalWeight()
    {
        // The polyphase kernel only moves weights (plus zero taps): widening to float32 and narrowing back is exact.
        var c = SingleNode(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, [1, 3, 4, 4], [3, 2, 4, 4], true, seed: 3);
        var original = c.Model.Graph.Initializer.Single(t => t.Name == "W");
        var before = new HashSet<ushort>(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(original.RawData.Span).ToArray()) { 0 };
        var m = Optimizer.Run(c.Model, new OptimizeOptions { Target = Target.Portable }).Model;
        var conv = m.Graph.Node.Single(n => n.OpType == "Conv");
        var packed = m.Graph.Initializer.Single(t => t.Name == conv.Input[1]);
        Assert.Equal((int)DataType.Float16, packed.DataType);
        foreach (var bits in System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(packed.RawData.Span))
            Assert.Contains(bits, before);
    }

    [Fact]
    public void Float16Portable_OrtCpuRunsInterleaveAndCropInFloat16_CastsOnlyAroundConv()
    {
        // ONNX Runtime's CPU has no float16 Conv, DepthToSpace or ConvTranspose (it inserts Casts, even with
        // ORT_DISABLE_ALL); Reshape, Transpose and Slice it has. The rewrite therefore avoids DepthToSpace, and the
        // only Casts in the session's graph are ONNX Runtime's own around the Conv (and around the original ConvTranspose).
        var c = SingleNode(new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] }, [1, 4, 5, 5], [4, 4, 4, 4], true, seed: 5);
        var m = Optimizer.Run(c.Model, new OptimizeOptions { Target = Target.Portable }).Model;
        var session = SessionGraph(m);
        var convs = session.Graph.Node.Where(n => n.OpType == "Conv").ToList();
        var convValues = convs.SelectMany(n => n.Input.Concat(n.Output)).ToHashSet();
        foreach (var cast in session.Graph.Node.Where(n => n.OpType == "Cast"))
            Assert.True(cast.Input.Concat(cast.Output).Any(convValues.Contains), $"Cast {cast.Name} is not at a Conv");
        Assert.Contains(session.Graph.Node, n => n.OpType == "Transpose");

        var originalSession = SessionGraph(c.Model);
        Assert.Contains(originalSession.Graph.Node, n => n.OpType == "Cast");
        Assert.Contains(originalSession.Graph.Node, n => n.OpType == "ConvTranspose");
    }

    [Fact]
    public void MixedFloat16InputFloat32Weights_LeftAloneWithReason_ModelByteIdentical()
    {
        // Not a valid ONNX node (T must be one type): the rewrite must not guess which type was meant.
        var c = SingleNode(new ConvTransposeAttributes { Strides = [2, 2] }, [1, 2, 3, 3], [2, 2, 2, 2], false, seed: 1);
        var model = c.Model.Clone();
        var w = model.Graph.Initializer.Single(t => t.Name == "W");
        model.Graph.Initializer.Remove(w);
        model.Graph.Initializer.Add(Tensors.FromFloats("W", [2, 2, 2, 2], Tensors.ToFloats(w)));
        var before = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Portable });
        var report = Assert.Single(result.Nodes);
        Assert.False(report.Rewritten);
        Assert.Contains("Float16", report.Reason);
        Assert.Equal(before, ModelIO.Serialize(result.Model));
    }

    [Fact]
    public void Float16_DynamicSpatial_OneRewriteHoldsForSeveralSizes()
    {
        var attrs = new ConvTransposeAttributes { Strides = [2, 2], Pads = [1, 1, 1, 1] };
        var c = SingleNode(attrs, [1, 3, 4, 4], [3, 2, 4, 4], true, seed: 11, declaredX: [-1, 3, -1, -1]);
        var m = Optimizer.Run(c.Model, new OptimizeOptions { Target = Target.Portable }).Model;
        Assert.Empty(FloatInitializers(m));
        foreach (var size in new long[] { 3, 6 })
        {
            var other = SingleNode(attrs, [2, 3, size, size + 1], [3, 2, 4, 4], true, seed: 11);
            // Same weights (same seed draws W first); the input differs in shape.
            var actual = Assert.Single(OrtRunner.RunOnce(m, [other.X]));
            AssertWithinHalfRule(other.Reference, actual, $"input {size}x{size + 1}");
        }
    }

    private static Onnx.ModelProto SessionGraph(Onnx.ModelProto model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"onnxdeconv-f16-{Guid.NewGuid():N}.onnx");
        try
        {
            using (new OrtRunner(model, new OrtRunOptions { Configure = so => so.OptimizedModelFilePath = path })) { }
            return ModelIO.Load(path);
        }
        finally { File.Delete(path); }
    }
}
