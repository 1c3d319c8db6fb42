using System.Text.Json;
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
        // QDQ models: their ConvTransposes need the QDQ site (issue 15 items 1-2); tests/GraphRewrite.Tests/Quantized covers them.
        foreach (var m in Directory.GetFiles(RepoPaths.DemoModels, "*.onnx").Where(p => !p.EndsWith("_qdq.onnx", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
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

// The optimize report names each upsample+Conv pattern with the nodes it covered and its MAC reduction (text and --json).
public sealed class UpsamplePatternReportTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    [Theory]
    // MACs after are those of the final form: the portable polyphase Convs also compute the border the Slice drops.
    [InlineData("esrgan_upsampler.onnx", "portable", "Resize+Conv", 2, 1.99)]
    [InlineData("esrgan_upsampler.onnx", "plugin", "Resize+Conv", 2, 2.25)]
    [InlineData("esrgan_upsampler.onnx", "convtranspose", "Resize+Conv", 2, 2.25)]
    [InlineData("upfirdn_zero_insertion.onnx", "plugin", "ZeroInsertion+Conv", 5, 4.0)]
    public void Optimize_DemoModel_Json_ListsEachPatternWithNodesAndMacReduction(string model, string target, string pattern, int nodes, double minReduction)
    {
        var input = Path.Combine(RepoPaths.DemoModels, model);
        var (code, stdout, stderr) = Run("optimize", input, "-o", _f.PathOf(model), "--target", target, "--json");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        var patterns = JsonDocument.Parse(stdout).RootElement.GetProperty("patterns").EnumerateArray().ToList();
        Assert.NotEmpty(patterns);
        foreach (var p in patterns)
        {
            Assert.Equal(pattern, p.GetProperty("pattern").GetString());
            Assert.True(p.GetProperty("rewritten").GetBoolean());
            var names = p.GetProperty("nodes").EnumerateArray().Select(n => n.GetString()!).ToList();
            Assert.Equal(nodes, names.Count);
            Assert.EndsWith("(Conv)", names[^1]);
            long before = p.GetProperty("macsBefore").GetInt64(), after = p.GetProperty("macsAfter").GetInt64();
            Assert.True(before / (double)after >= minReduction, $"{before} -> {after}");
            Assert.Equal(Math.Round(before / (double)after, 4), p.GetProperty("reduction").GetDouble());
        }
    }

    [Fact]
    public void Optimize_EsrganText_HasPatternTableNamingResizeAndConv()
    {
        var input = Path.Combine(RepoPaths.DemoModels, "esrgan_upsampler.onnx");
        // Portable named: the default (auto) chooses by measurement, which may keep the original pairs on this machine.
        var (code, stdout, stderr) = Run("optimize", input, "-o", _f.PathOf("e.onnx"), "--target", "portable");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Contains("Upsample+Conv patterns (2)", stdout);
        Assert.Contains("/interp1/Resize (Resize)", stdout);
        // Portable: 9.44M Conv MACs -> 4.73M in the polyphase Conv of the final form.
        Assert.Contains("9.44M -> 4.73M", stdout);
        Assert.Contains("1.99x fewer", stdout);
    }

    [Fact]
    public void Optimize_PlainConvTransposeModel_HasNoPatternTable()
    {
        var input = Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx");
        var (code, stdout, stderr) = Run("optimize", input, "-o", _f.PathOf("d.onnx"), "--target", "portable", "--json"); // the table does not depend on the target; auto would time 5 nodes
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Empty(JsonDocument.Parse(stdout).RootElement.GetProperty("patterns").EnumerateArray());
    }
}
