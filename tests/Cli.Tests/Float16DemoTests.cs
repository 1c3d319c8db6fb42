using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.Cli.Tests;

// The float16 demo model (tests/models/fp16_decoder.onnx: ConvTranspose and Resize+Conv, every tensor float16) through
// the CLI: every target rewrites it, keeps it float16 (no float32 weight, no Cast added) and verifies it through ONNX
// Runtime (ORT_DISABLE_ALL) within the float16 rule |a-b| <= 2^-8 + 2^-9*|b|, which verify states in its output.
public sealed class Float16DemoTests : IDisposable
{
    private static readonly string Model = Path.Combine(RepoPaths.DemoModels, "fp16_decoder.onnx");
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    [Theory]
    [InlineData("portable")]
    [InlineData("plugin")]
    [InlineData("auto")]
    [InlineData("convtranspose")]
    public void Optimize_Float16Demo_EveryTarget_RewritesStaysFloat16AndVerifies(string target)
    {
        var output = _f.PathOf($"{target}.onnx");
        var (code, stdout, stderr) = Run("optimize", Model, "-o", output, "--target", target);
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        // auto keeps a node when no candidate is measurably faster (timing on a shared machine): no claim of a rewrite there.
        if (target != "auto") Assert.Contains("rewritten", stdout);
        Assert.Contains("float16 outputs within atol 0.00391, rtol 0.00195", stdout);

        var original = ModelIO.Load(Model);
        var rewritten = ModelIO.Load(output);
        Assert.DoesNotContain(rewritten.Graph.Node, n => n.OpType == "Cast");
        // Only the Resize scales (float32 by the op's schema) may be float32, and only while a Resize remains.
        var resizeInputs = rewritten.Graph.Node.Where(n => n.OpType == "Resize").SelectMany(n => n.Input.Skip(1)).ToHashSet();
        Assert.All(rewritten.Graph.Initializer.Where(t => t.DataType == (int)DataType.Float), t => Assert.Contains(t.Name, resizeInputs));
        Assert.DoesNotContain(rewritten.Graph.Node, n => n.OpType == "Resize" && target != "auto");
        if (target is "portable" or "plugin")
            Assert.DoesNotContain(rewritten.Graph.Node, n => n.OpType == "ConvTranspose");
        if (target != "auto") Assert.NotEqual(ModelIO.Serialize(original), ModelIO.Serialize(rewritten));

        // Checked again from the files, on other inputs.
        var (vcode, vout, verr) = Run("verify", Model, output, "--seed", "5");
        Assert.True(vcode == ExitCodes.Ok, vout + verr);
        Assert.Contains("float16 outputs within", vout);
    }

    [Fact]
    public void Verify_Float16Model_WrongWeight_FailsWithExit2()
    {
        // A rewrite that is off by more than the float16 rule must fail: change one ConvTranspose weight by 0.25.
        var m = ModelIO.Load(Model);
        var w = m.Graph.Initializer.Single(t => t.Name == m.Graph.Node.First(n => n.OpType == "ConvTranspose").Input[1]);
        var values = Tensors.ToFloats(w);
        values[0] += 0.25f;
        m.Graph.Initializer[m.Graph.Initializer.IndexOf(w)] = HalfFloats.Tensor(w.Name, DataType.Float16, w.Dims.ToArray(), values);
        var broken = _f.Save(m, "broken.onnx");
        var (code, stdout, stderr) = Run("verify", Model, broken);
        Assert.True(code == ExitCodes.VerificationFailed, stdout + stderr);
        Assert.Contains("FAIL", stdout);
        Assert.Contains("float16 outputs within", stdout);
    }

    [Fact]
    public void Verify_Float16InputFiles_AreRead_AndReported()
    {
        // A float16 input_0.pb (backend-test layout, int32_data bit patterns as some exporters write them).
        var dir = Directory.CreateDirectory(_f.PathOf("inputs")).FullName;
        var x = TensorValue.Rounded("latent", DataType.Float16, [1, 64, 8, 8], Random(64 * 64, seed: 3));
        var proto = new GraphRewrite.Onnx.TensorProto { Name = "latent", DataType = (int)DataType.Float16 };
        proto.Dims.AddRange(x.Dims);
        proto.Int32Data.AddRange(((Microsoft.ML.OnnxRuntime.Float16[])x.Data).Select(h => (int)h.value));
        File.WriteAllBytes(Path.Combine(dir, "input_0.pb"), Google.Protobuf.MessageExtensions.ToByteArray(proto));
        var output = _f.PathOf("portable.onnx");
        var (code, stdout, stderr) = Run("optimize", Model, "-o", output, "--target", "portable");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        (code, stdout, stderr) = Run("verify", Model, output, "--inputs", dir, "--json");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Contains("\"Float16\"", stdout);
        Assert.Contains("halfPrecisionRules", stdout);
    }
}
