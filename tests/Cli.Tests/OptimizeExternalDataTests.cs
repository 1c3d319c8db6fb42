using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

// optimize on a model whose weights live in a side file: the rewrite reads them, the output keeps large tensors in
// "OUT.data", and optimize verifies at |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4.
public sealed class OptimizeExternalDataTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    private string ExternalDcgan()
    {
        var m = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx"));
        var dir = Directory.CreateDirectory(_f.PathOf("in")).FullName;
        var path = Path.Combine(dir, "dcgan.onnx");
        ModelIO.Save(m, path, new ModelSaveOptions { ExternalDataThreshold = 1024 });
        Assert.Contains(ModelIO.AllTensors(ModelIO.Load(path)), ExternalData.IsExternal);
        return path;
    }

    [Theory]
    [InlineData("portable")]
    [InlineData("plugin")]
    public void Optimize_ExternalWeights_RewrittenVerified_OutputKeepsSideFile(string target)
    {
        var input = ExternalDcgan();
        var inputs = Directory.GetFiles(Path.GetDirectoryName(input)!).ToDictionary(f => f, File.ReadAllBytes);
        var output = _f.PathOf($"out/{target}.onnx");
        var (code, stdout, stderr) = Run("optimize", input, "-o", output, "--target", target);
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Contains("5 node(s) rewritten", stdout);
        Assert.True(File.Exists(output + ".data"), "large initializers go to OUT.data");
        var written = ModelIO.Load(output);
        Assert.Contains(ModelIO.AllTensors(written), ExternalData.IsExternal);
        Assert.DoesNotContain(written.Graph.Node, n => n.OpType == GraphRewrite.Ops.ConvTranspose.OpType);
        // The BatchNorm fold reads the external ConvTranspose weights too (they are not loaded up front any more).
        Assert.DoesNotContain(written.Graph.Node, n => n.OpType == GraphRewrite.Ops.BatchNormalization.OpType);
        foreach (var (f, bytes) in inputs) Assert.Equal(bytes, File.ReadAllBytes(f)); // IN and its side file untouched
        var (vcode, vout, verr) = Run("verify", input, output);
        Assert.True(vcode == ExitCodes.Ok, vout + verr);
    }

    [Fact]
    public void OptimizeAuto_ExternalWeights_EveryCandidateTimed_WholeModelTimed_Verified()
    {
        // auto runs the isolated nodes and the whole models from memory: the external weights must be read in for
        // that (relative to IN), or every candidate fails to load and auto silently keeps everything unchanged.
        var input = ExternalDcgan();
        var inputs = Directory.GetFiles(Path.GetDirectoryName(input)!).ToDictionary(f => f, File.ReadAllBytes);
        var output = _f.PathOf("out/auto.onnx");
        var (code, stdout, stderr) = Run("optimize", input, "-o", output, "--target", "auto", "--budget-ms", "10", "--threads", "1", "--no-cache", "--json");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        var json = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        var timed = json.GetProperty("nodes").EnumerateArray().Where(n => n.TryGetProperty("candidates", out _)).ToList();
        Assert.Equal(5, timed.Count);
        foreach (var n in timed)
            Assert.All(n.GetProperty("candidates").EnumerateArray(), c =>
                Assert.True(c.TryGetProperty("medianMs", out var ms) && ms.ValueKind == System.Text.Json.JsonValueKind.Number, $"{n} candidate not timed: {c}"));
        Assert.True(json.TryGetProperty("wholeModel", out var whole) && whole.ValueKind == System.Text.Json.JsonValueKind.Object, stdout + stderr);
        Assert.DoesNotContain("whole model not timed", stderr);
        foreach (var (f, bytes) in inputs) Assert.Equal(bytes, File.ReadAllBytes(f)); // IN and its side file untouched
        if (json.GetProperty("written").GetBoolean() && File.Exists(output))
        {
            var (vcode, vout, verr) = Run("verify", input, output);
            Assert.True(vcode == ExitCodes.Ok, vout + verr);
        }
    }

    [Fact]
    public void Optimize_ExternalWeights_NothingToRewrite_CopyToOtherFolderStillRuns()
    {
        // Negative for the rewrite: a Conv-only model (nothing to rewrite) copied to another folder must carry its side file.
        var m = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx"));
        foreach (var n in m.Graph.Node.Where(n => n.OpType == GraphRewrite.Ops.ConvTranspose.OpType)) n.Domain = "com.example.keep";
        var dir = Directory.CreateDirectory(_f.PathOf("in2")).FullName;
        var input = Path.Combine(dir, "m.onnx");
        ModelIO.Save(m, input, new ModelSaveOptions { ExternalDataThreshold = 1024 });
        var output = _f.PathOf("out2/m.onnx");
        var (code, stdout, stderr) = Run("optimize", input, "-o", output, "--no-verify");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Contains("nothing to rewrite", stdout);
        ModelIO.ValidateExternalData(ModelIO.Load(output)); // every external reference resolves next to OUT
    }
}
