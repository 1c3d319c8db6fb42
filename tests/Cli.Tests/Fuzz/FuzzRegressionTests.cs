using Google.Protobuf;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Cli.Tests.Fuzz;

/// <summary>Crashes and hangs the fuzzer found, each reduced to the mutation that caused it.</summary>
public sealed class FuzzRegressionTests
{
    /// <summary>Loads <paramref name="source"/>, applies the fuzzer's mutation and writes it to dir/model.onnx (bytes as the fuzzer wrote them).</summary>
    private static string WriteMutated(CliHarness.TempDir dir, string source, Action<ModelProto> mutate)
    {
        var model = ModelIO.Load(source);
        mutate(model);
        string path = dir.File("model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private static NodeProto FirstConvTranspose(ModelProto model) =>
        model.Graph.Node.First(n => n.OpType == GraphRewrite.Ops.ConvTranspose.OpType);

    private static string WithInputDim(CliHarness.TempDir dir, long dim) =>
        WriteMutated(dir, Path.Combine(RepoPaths.DemoModels, "sr_block.onnx"), model =>
            model.Graph.Input[0].Type.TensorType.Shape.Dim[dim == 1L << 20 ? 2 : 0] = new TensorShapeProto.Types.Dimension { DimValue = dim });

    // Found by the fuzzer: a declared input dim of 2^40 made ONNX Runtime throw std::bad_alloc (exit 1); 2^31-1 overflowed
    // a span (exit 1); long.MaxValue allocated for over a minute (hang). The shape probe now refuses such inputs up front.
    [Theory]
    [InlineData(1L << 20)] // [1,3,2^20,32] = 384 MiB of zeros: allocates, then runs a Conv stack for many minutes (hang)
    [InlineData(1L << 40)]
    [InlineData(int.MaxValue)]
    [InlineData(long.MaxValue)]
    public void InfoAndExplain_HugeDeclaredInputDim_ReportShapeUnknownOrInvalidInput(long dim)
    {
        using var dir = new CliHarness.TempDir();
        string path = WithInputDim(dir, dim);
        foreach (var command in new[] { "info", "explain" })
        {
            var r = CliHarness.Run(command, path);
            Assert.DoesNotContain("   at ", r.Err);
            // info/explain treat an unprobeable shape as unknown (exit 0) or as invalid input naming the input (exit 3).
            if (r.Code == ExitCodes.Ok) Assert.True(r.Out.Contains("unknown", StringComparison.Ordinal), $"{command}: {r}");
            else
            {
                Assert.True(r.Code == ExitCodes.InvalidInput, $"{command}: {r}");
                Assert.Contains("'lr'", r.Err);
            }
        }
    }

    [Fact]
    public void ShapeProbe_HugeDeclaredInputDim_RefusesBeforeAllocating()
    {
        using var dir = new CliHarness.TempDir();
        var model = ModelIO.Load(WithInputDim(dir, 1L << 40));
        var e = Assert.Throws<ShapeProbeException>(() => ShapeProbe.Probe(model, [model.Graph.Node[0].Output[0]]));
        Assert.Contains("graph input 'lr'", e.Message);
        Assert.Contains("--shape lr=", e.Message);
    }

    // Found by the fuzzer (seed 7, case 12): strides of 2^33 on the HiFi-GAN demo made optimize --target plugin throw
    // from the kernel's weight packing inside Apply (exit 1). The plugin rewrite now packs while matching and skips the
    // node with the reason; the portable target still rewrites (and verifies) it.
    [Theory]
    [InlineData("plugin")]
    [InlineData("portable")]
    public void Optimize_HugeStride_NeverCrashes(string target)
    {
        using var dir = new CliHarness.TempDir();
        string path = WriteMutated(dir, Path.Combine(RepoPaths.DemoModels, "hifigan_upsampler_1d.onnx"), model =>
            FirstConvTranspose(model).Attribute.First(a => a.Name == GraphRewrite.Ops.ConvTranspose.Strides).Ints[0] = 1L << 33);
        var r = CliHarness.Run("optimize", path, "-o", dir.File("out.onnx"), "--target", target);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.True(r.Code is ExitCodes.Ok or ExitCodes.InvalidInput or ExitCodes.VerificationFailed, r.ToString());
        if (target == "plugin" && r.Code == ExitCodes.Ok) Assert.Contains("cannot run this geometry", r.Out);
    }

    // Found by the fuzzer: strides of 2^33 made explain loop over every stride phase and draw an 8-billion-cell picture
    // (hang). The preimage list is capped and a picture that long is replaced by a note.
    [Fact]
    public void Explain_HugeStride_FinishesWithoutPicture()
    {
        CliHarness.Result? r = null;
        var t = new Thread(() => r = CliHarness.Run("explain", "--input", "5", "--kernel", "3", "--stride", "8589934592")) { IsBackground = true };
        t.Start();
        Assert.True(t.Join(TimeSpan.FromSeconds(60)), "explain did not finish within 60 s");
        Assert.True(r!.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("no picture", r.Out);
        Assert.Contains("input 5 -> output 34359738371", r.Out); // s*(I-1)+k = 4*2^33+3
    }

    // Found by the fuzzer: W declared [2, 2^63-1, 3, 3] made info and explain fail with an OverflowException (exit 1).
    // Geometry resolution now reports overflowing sizes as a GeometryException.
    [Fact]
    public void InfoAndExplain_WeightDimOverflowingMacs_ReportTheNode()
    {
        using var dir = new CliHarness.TempDir();
        string path = WriteMutated(dir, Path.Combine(RepoPaths.Conformance, "test_convtranspose", "model.onnx"), model =>
            model.Graph.Input.Single(i => i.Name == "W").Type.TensorType.Shape.Dim[1] = new TensorShapeProto.Types.Dimension { DimValue = long.MaxValue });

        var explain = CliHarness.Run("explain", path);
        Assert.True(explain.Code == ExitCodes.InvalidInput, explain.ToString());
        Assert.Contains("overflow", explain.Err);
        Assert.Contains(",9223372036854775807,3,3]", explain.Err);
        var info = CliHarness.Run("info", path);
        Assert.True(info.Code == ExitCodes.Ok, info.ToString());
        Assert.Contains("sizes overflow 64-bit integers", info.Out);
    }

    // Found by the fuzzer: a Resize model whose int64 'sizes' input is declared [2^31-1] made info create an ONNX Runtime
    // session for the probe before checking the input size; it hung and grew to 24 GB. The check now comes first.
    [Fact]
    public void Info_HugeDeclaredInt64Input_RefusesTheProbeQuickly()
    {
        using var dir = new CliHarness.TempDir();
        string path = WriteMutated(dir, Path.Combine(RepoPaths.Conformance, "test_resize_upsample_sizes_nearest_floor_align_corners", "model.onnx"), model =>
            model.Graph.Input.Single(i => i.Name == "sizes").Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimValue = int.MaxValue });
        CliHarness.Result? r = null;
        var t = new Thread(() => r = CliHarness.Run("info", path, "--json")) { IsBackground = true };
        t.Start();
        Assert.True(t.Join(TimeSpan.FromSeconds(60)), "info did not finish within 60 s");
        Assert.True(r!.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("64 MiB limit", r.Out);
    }

    // Found by the fuzzer: group 0 on a ConvTranspose made ONNX Runtime divide by zero while creating the session
    // (SIGFPE: the whole process died, here the test host). NativeGuard refuses such models before any session.
    [Theory]
    [InlineData("info")]
    [InlineData("verify")]
    public void GroupZero_IsRefusedBeforeOnnxRuntimeNamingTheNode(string command)
    {
        using var dir = new CliHarness.TempDir();
        string nodeName = "";
        string path = WriteMutated(dir, Path.Combine(RepoPaths.DemoModels, "depthwise_convtranspose.onnx"), model =>
        {
            var node = FirstConvTranspose(model);
            node.Attribute.Single(a => a.Name == GraphRewrite.Ops.ConvTranspose.Group).I = 0;
            nodeName = node.Name;
        });
        if (command == "info")
        {
            // info reports the node's problem and probes nothing (exit 0); the note says why shapes were not probed.
            var i = CliHarness.Run("info", path, "--json");
            Assert.True(i.Code == ExitCodes.Ok, i.ToString());
            Assert.Contains("attribute 'group' has value 0", i.Out);
            return;
        }
        var r = CliHarness.Run("verify", path, path);
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains("attribute 'group' has value 0", r.Err);
        Assert.Contains(nodeName, r.Err);
    }

    // Found by the fuzzer: x declared [1,32,16,2^20] (2 GiB) passed the random-input check (under 2^31 elements);
    // verification ran ONNX Runtime on it and the fuzzer was OOM-killed at 12 GB. Random inputs are capped at 2^25 elements.
    [Fact]
    public void Optimize_HugeDeclaredInput_IsInvalidInputBeforeAllocating()
    {
        using var dir = new CliHarness.TempDir();
        string path = WriteMutated(dir, Path.Combine(RepoPaths.DemoModels, "depthwise_convtranspose.onnx"), model =>
            model.Graph.Input[0].Type.TensorType.Shape.Dim[3] = new TensorShapeProto.Types.Dimension { DimValue = 1L << 20 });
        var r = CliHarness.Run("optimize", path, "-o", dir.File("out.onnx"), "--target", "portable");
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains("over the limit of 33554432", r.Err);
        Assert.False(File.Exists(dir.File("out.onnx")));
        // --target auto does not time a node that size either: it stays unchanged, with the reason.
        var auto = CliHarness.Run("optimize", path, "-o", dir.File("auto.onnx"), "--target", "auto", "--no-cache");
        Assert.True(auto.Code == ExitCodes.Ok, auto.ToString());
        Assert.Contains("too large to time", auto.Out);
    }

    // Found by the fuzzer: strides [2^31-1, 3] made the plan builder allocate one list per phase (OutOfMemoryException,
    // exit 1). Plans are limited to 2^16 phases; such a node is skipped with the reason.
    [Fact]
    public void Optimize_HugeStride_SkipsTheNodeWithReason()
    {
        using var dir = new CliHarness.TempDir();
        string path = WriteMutated(dir, Path.Combine(RepoPaths.Conformance, "test_ConvTranspose2d_no_bias", "model.onnx"), model =>
            FirstConvTranspose(model).Attribute.Single(a => a.Name == GraphRewrite.Ops.ConvTranspose.Strides).Ints[0] = int.MaxValue);
        foreach (var target in new[] { "portable", "plugin" })
        {
            var r = CliHarness.Run("optimize", path, "-o", dir.File("out.onnx"), "--target", target, "--json");
            Assert.True(r.Code == ExitCodes.Ok, r.ToString());
            Assert.False(r.Json().GetProperty("changed").GetBoolean());
        }
    }
}
