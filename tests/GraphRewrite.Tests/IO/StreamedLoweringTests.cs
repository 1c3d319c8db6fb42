using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using Xunit.Abstractions;

namespace OnnxDeconv.GraphRewrite.Tests.IO;

// The large-model path: the portable and plugin lowerings write a rearranged weight into the spill file slice by
// slice instead of building it whole. Its bytes must be exactly those of the in-memory lowering, it must be external,
// the rewrite must still verify in ONNX Runtime (tolerance |a-b| <= 1e-5 + 1e-4*|b|, float32) and a corrupted one must
// not, and the lowering must never allocate the whole lowered tensor.
public class StreamedLoweringTests(ITestOutputHelper output)
{
    private static TensorProto Init(ModelProto m, string name) => m.Graph.Initializer.Single(t => t.Name == name);

    /// <summary>X[1,cin,5,5] -> ConvTranspose(W[cin,cout/group,4,4], B; k4 s2 p1) -> Y, weights saved as external data.</summary>
    private static ModelProto ExternalConvTranspose(TempFolder tmp, long cin = 8, long coutPerGroup = 6, long group = 1, long opset = 17)
    {
        var rng = new Random(3);
        var b = new ModelBuilder("ct", opset: opset);
        b.Input("X", [1, cin, 5, 5]);
        b.Initializer("W", [cin, coutPerGroup, 4, 4], Enumerable.Range(0, (int)(cin * coutPerGroup * 16)).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray());
        b.Initializer("B", [coutPerGroup * group], Enumerable.Range(0, (int)(coutPerGroup * group)).Select(i => i * 0.01f).ToArray());
        b.Node(Ops.ConvTranspose.OpType, ["X", "W", "B"],
            [Attributes.Ints(Ops.ConvTranspose.Strides, [2, 2]), Attributes.Ints(Ops.ConvTranspose.Pads, [1, 1, 1, 1]), Attributes.Int(Ops.ConvTranspose.Group, group)],
            output: "Y", name: "up");
        b.Output("Y", [1, coutPerGroup * group, 10, 10]);
        var path = tmp["in.onnx"];
        ModelIO.Save(b.Build(), path, new ModelSaveOptions { ExternalDataThreshold = 256 });
        var model = ModelIO.Load(path);
        Assert.True(ExternalData.IsExternal(Init(model, "W")));
        return model;
    }

    // No AfterNode spilling: a large weight is external only if the lowering itself streamed it.
    private static OptimizeResult Streamed(ModelProto model, Target target, PhaseForm form, SpillFile spill) =>
        Optimizer.Run(model, new OptimizeOptions { Target = target, Spill = spill }, form);

    public static TheoryData<Target, PhaseForm, long, long, long> Cases => new()
    {
        // target, form, opset, group, slice bytes (tiny slices cut rows and packing blocks anywhere)
        { Target.Portable, PhaseForm.Combined, 17, 1, 64 },
        { Target.Portable, PhaseForm.Combined, 17, 1, 4 },       // a slice smaller than one output channel's row
        { Target.Portable, PhaseForm.Combined, 9, 1, 100 },      // DepthToSpace DCR before opset 11: phase-major channels
        { Target.Portable, PhaseForm.Combined, 17, 2, 64 },
        { Target.Portable, PhaseForm.PerPhase, 17, 1, 64 },
        { Target.Plugin, PhaseForm.Auto, 17, 1, 4 },
        { Target.Plugin, PhaseForm.Auto, 17, 1, 52 },            // slices that end inside a 12-channel block
        { Target.Plugin, PhaseForm.Auto, 17, 2, SpillFile.SliceBytes },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void StreamedLowering_SameBytesAsInMemory_External_AndVerifies(Target target, PhaseForm form, long opset, long group, long sliceBytes)
    {
        using var tmp = new TempFolder();
        var model = ExternalConvTranspose(tmp, group: group, opset: opset);
        var inMemory = Optimizer.Run(model, new OptimizeOptions { Target = target }, form);
        Assert.True(inMemory.Changed, string.Join("; ", inMemory.Nodes.Select(n => n.Reason)));

        using var spill = new SpillFile(tmp["out"], "out.onnx", threshold: 256, sliceBytes);
        var streamed = Streamed(model, target, form, spill);
        Assert.True(streamed.Changed);
        Assert.Equal(inMemory.Model.Graph.Node, streamed.Model.Graph.Node);

        var big = inMemory.Model.Graph.Initializer.Where(t => Tensors.ElementCount(t.Dims) * sizeof(float) >= 256).ToList();
        Assert.NotEmpty(big);
        Assert.Equal(inMemory.Model.Graph.Initializer.Select(t => t.Name), streamed.Model.Graph.Initializer.Select(t => t.Name));
        foreach (var t in inMemory.Model.Graph.Initializer)
        {
            var s = Init(streamed.Model, t.Name);
            Assert.Equal(t.Dims, s.Dims);
            Assert.Equal(ModelIO.TensorBytes(inMemory.Model, t), ModelIO.TensorBytes(streamed.Model, s));
        }
        foreach (var t in big)
        {
            var s = Init(streamed.Model, t.Name);
            Assert.True(ExternalData.IsExternal(s), $"{t.Name} is inline");
            Assert.Equal(spill.Location, ExternalData.Describe(s).Location);
        }
        Assert.Equal(big.Sum(t => Tensors.ElementCount(t.Dims) * sizeof(float)), spill.Bytes);

        var report = NodeVerifier.Verify(model, streamed.Model,
            new VerifyOptions { Tolerance = new Tolerance(1e-5, 1e-4), Configure = OnnxDeconvSessionOptions.ConfigureFor(streamed.Model) });
        Assert.True(report.Passed, report.Error ?? string.Join("; ", report.Outputs.Select(o => $"{o.Name}: {o.Passed}")));
    }

    [Fact]
    public void StreamedLowering_CorruptedSpilledWeight_FailsVerification()
    {
        // Negative: one value of the streamed weight changed in the spill file is caught by the isolated check.
        using var tmp = new TempFolder();
        var model = ExternalConvTranspose(tmp);
        using var spill = new SpillFile(tmp["out"], "out.onnx", threshold: 256, sliceBytes: 64);
        var streamed = Streamed(model, Target.Portable, PhaseForm.Combined, spill);
        var w = streamed.Model.Graph.Initializer.Single(t => ExternalData.IsExternal(t) && t.Dims.Count == 4);
        var info = ExternalData.Describe(w);
        using (var f = new FileStream(Path.Combine(spill.Directory, spill.Location), FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
        {
            var values = ModelIO.TensorFloats(streamed.Model, w);
            int at = Array.FindIndex(values, v => v != 0);
            f.Position = info.Offset + at * sizeof(float);
            f.Write(BitConverter.GetBytes(values[at] + 1f));
        }
        var report = NodeVerifier.Verify(model, streamed.Model, new VerifyOptions());
        Assert.False(report.Passed);
    }

    [Theory]
    [InlineData(Target.Portable)]
    [InlineData(Target.Plugin)]
    public void StreamedLowering_AllocatesLessThanTheLoweredWeight_InMemoryPathDoesNot(Target target)
    {
        // One 32 MiB weight. The rewrite reads it (32 MiB) and, streamed, writes its lowered form through a 4 MiB
        // slice buffer: well under two weights' worth. Built in memory, the lowered weight adds another 32 MiB (the
        // control: this bound can fail). An allocation bound, not a timing.
        using var tmp = new TempFolder();
        var model = ExternalConvTranspose(tmp, cin: 1024, coutPerGroup: 512);
        long weightBytes = 1024L * 512 * 16 * sizeof(float);

        long Allocated(Func<OptimizeResult> run)
        {
            GC.Collect();
            long before = GC.GetAllocatedBytesForCurrentThread();
            var r = run();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(r.Changed, string.Join("; ", r.Nodes.Select(n => n.Reason)));
            return allocated;
        }

        using var spill = new SpillFile(tmp["out"], "out.onnx", threshold: 1 << 20);
        Allocated(() => Streamed(model, target, PhaseForm.Combined, spill)); // warm-up: JIT, plan caches, the spill's slice buffer
        long streamed = Allocated(() => Streamed(model, target, PhaseForm.Combined, spill));
        long inMemory = Allocated(() => Optimizer.Run(model, new OptimizeOptions { Target = target }, PhaseForm.Combined));
        output.WriteLine($"{target}: weight {weightBytes:N0} bytes; allocated streamed {streamed:N0}, in memory {inMemory:N0}");
        Assert.True(streamed < weightBytes * 3 / 2, $"streamed rewrite allocated {streamed:N0} bytes for a {weightBytes:N0}-byte weight");
        Assert.True(inMemory >= weightBytes * 2, $"in-memory rewrite allocated {inMemory:N0} bytes for a {weightBytes:N0}-byte weight");
    }

    [Fact]
    public void ComputedTensors_SinkBelowThreshold_BuildsInMemory_AndRejectsABadGranule()
    {
        using var tmp = new TempFolder();
        var model = new ModelProto();
        using var spill = new SpillFile(tmp.Path, "o.onnx", threshold: 1024);
        static void Fill(long first, Span<float> dst) { for (int i = 0; i < dst.Length; i++) dst[i] = first + i; }
        var small = ComputedTensors.Floats("s", [4, 8], 8, Fill, spill.For(model));
        Assert.False(ExternalData.IsExternal(small));
        Assert.Equal(Enumerable.Range(0, 32).Select(i => (float)i), Tensors.ToFloats(small));
        var large = ComputedTensors.Floats("l", [16, 16], 16, Fill, spill.For(model));
        Assert.True(ExternalData.IsExternal(large));
        Assert.Equal(Enumerable.Range(0, 256).Select(i => (float)i), ModelIO.TensorFloats(model, large));
        Assert.Throws<ArgumentException>(() => ComputedTensors.Floats("bad", [3, 5], 4, Fill, null));
    }
}
