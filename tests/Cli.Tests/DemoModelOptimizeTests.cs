using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

// End to end with the real optimizer: every bundled demo model optimizes to a model that optimize itself verified
// through ONNX Runtime (|a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4), with no ConvTranspose left, for both targets.
public sealed class DemoModelOptimizeTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var m in Directory.GetFiles(RepoPaths.DemoModels, "*.onnx").Order(StringComparer.Ordinal))
            foreach (var t in new[] { "portable", "plugin" })
                data.Add(Path.GetFileName(m), t);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Optimize_DemoModel_VerifiedAndNoConvTransposeLeft(string model, string target)
    {
        var input = Path.Combine(RepoPaths.DemoModels, model);
        var before = File.ReadAllBytes(input);
        var output = _f.PathOf($"{target}.{model}");
        var (code, stdout, stderr) = Run("optimize", input, "-o", output, "--target", target);
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Equal(before, File.ReadAllBytes(input)); // the input is never modified

        var rewritten = ModelIO.Load(output);
        Assert.DoesNotContain(rewritten.Graph.Node, n => n.OpType == GraphRewrite.Ops.ConvTranspose.OpType);
        // An independent check of what optimize wrote: verify it again from the files.
        var (vcode, vout, verr) = Run("verify", input, output, "--seed", "7");
        Assert.True(vcode == ExitCodes.Ok, vout + verr);
        if (new GraphIndex(ModelIO.Load(input)).Graph.Node.Any(n => n.OpType == GraphRewrite.Ops.ConvTranspose.OpType))
            Assert.Contains("rewritten", stdout);
    }
}
