using System.Text.Json;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.DemoModels;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

// optimize on the large-model generator's output at a small size (the documented full-size run is in
// docs/reliability.md "Large models"; ONNXDECONV_LARGE_OPTIMIZE_MB=2300 runs these at that size): weights stay
// external, the rewrite is verified node by node, nothing is left behind.
// Verification tolerance |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4 (float32 defaults).
public sealed class LargeModelOptimizeTests : IDisposable
{
    private static readonly long SizeMb =
        long.Parse(Environment.GetEnvironmentVariable("ONNXDECONV_LARGE_OPTIMIZE_MB") ?? "16", System.Globalization.CultureInfo.InvariantCulture);
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    private LargeModelInfo Generate(string folder) => LargeModel.Write(_f.PathOf(folder), SizeMb);

    // Hashes, streamed: at full size the input is gigabytes.
    private static Dictionary<string, string> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => f, f =>
        {
            using var s = File.OpenRead(f);
            return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(s));
        });

    [Fact]
    public void Generator_WritesAtLeastTheRequestedSize_AllWeightsExternal()
    {
        var info = Generate("gen");
        Assert.True(info.DataBytes >= SizeMb << 20, $"{info.DataBytes} bytes of weights for {SizeMb} MiB requested");
        Assert.Equal(info.DataBytes, new FileInfo(info.DataPath).Length);
        var m = ModelIO.Load(info.ModelPath);
        Assert.All(m.Graph.Initializer, t => Assert.True(ExternalData.IsExternal(t), $"{t.Name} is inline"));
        Assert.Equal(info.Layers, m.Graph.Node.Count(n => n.OpType == Ops.ConvTranspose.OpType));
        Assert.True(info.Layers >= 2);
        ModelIO.ValidateExternalData(m);
        Assert.True(new FileInfo(info.ModelPath).Length < 64 << 10, "the model file holds no weights");
    }

    [Fact]
    public void Optimize_LargeModel_VerifyNodes_WeightsStayExternal_InputUntouched_ReportsPeakMemory()
    {
        var info = Generate("in");
        var inDir = Path.GetDirectoryName(info.ModelPath)!;
        var inputFiles = Snapshot(inDir);
        var output = _f.PathOf("out/large.onnx");

        var r = CliHarness.Run("optimize", info.ModelPath, "-o", output, "--target", "portable", "--verify", "nodes", "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var json = r.Json();
        Assert.Equal("nodes", json.GetProperty("verifyMode").GetString());
        var verification = json.GetProperty("verification");
        Assert.True(verification.GetProperty("passed").GetBoolean());
        // One isolated check per rewritten ConvTranspose (its output keeps its name).
        Assert.Equal(info.Layers, verification.GetProperty("outputs").GetArrayLength());
        var memory = json.GetProperty("memory");
        Assert.True(memory.GetProperty("peakRssBytes").GetInt64() > 0);
        Assert.True(memory.GetProperty("largestTensorBytes").GetInt64() >= info.LargestTensorBytes);
        Assert.True(memory.GetProperty("modelBytes").GetInt64() >= info.DataBytes);

        // Input folder byte for byte as it was; the output folder holds the model and its data, no spill file.
        Assert.Equal(inputFiles.Keys.Order(), Directory.GetFiles(inDir).Order());
        Assert.Equal(inputFiles, Snapshot(inDir));
        Assert.Equal(["large.onnx", "large.onnx.data"], Directory.GetFiles(_f.PathOf("out")).Select(Path.GetFileName).Order());

        var written = ModelIO.Load(output);
        Assert.DoesNotContain(written.Graph.Node, n => n.OpType == Ops.ConvTranspose.OpType);
        Assert.All(written.Graph.Initializer.Where(t => (ExternalData.ExpectedByteLength(t) ?? 0) >= 1 << 20),
            t => Assert.Equal("large.onnx.data", ExternalData.Describe(t).Location));
        ModelIO.ValidateExternalData(written);

        // Equivalence of the whole written model with the input in ONNX Runtime (at a size that runs twice in memory).
        if (info.DataBytes < 512L << 20)
        {
            var v = CliHarness.Run("verify", info.ModelPath, output);
            Assert.True(v.Code == ExitCodes.Ok, v.ToString());
        }
    }

    [Theory]
    [InlineData("portable", Target.Portable)]
    [InlineData("plugin", Target.Plugin)]
    public void Optimize_LargeModel_StreamedWeights_SameBytesAsInMemoryLowering(string flag, Target target)
    {
        // The CLI's large-model path writes each lowered weight into the spill slice by slice; the in-memory lowering
        // of the same model must give the same tensors, byte for byte.
        var info = Generate("in");
        var output = _f.PathOf("out/large.onnx");
        var r = CliHarness.Run("optimize", info.ModelPath, "-o", output, "--target", flag, "--verify", "nodes");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());

        var input = ModelIO.Load(info.ModelPath);
        var inMemory = Optimizer.Run(input, new OptimizeOptions { Target = target });
        var written = ModelIO.Load(output);
        Assert.Equal(inMemory.Model.Graph.Node, written.Graph.Node);
        Assert.Equal(inMemory.Model.Graph.Initializer.Select(t => t.Name).Order(), written.Graph.Initializer.Select(t => t.Name).Order());
        foreach (var t in inMemory.Model.Graph.Initializer)
        {
            var w = written.Graph.Initializer.Single(x => x.Name == t.Name);
            Assert.Equal(t.Dims, w.Dims);
            Assert.True(ModelIO.TensorBytes(inMemory.Model, t).AsSpan().SequenceEqual(ModelIO.TensorBytes(written, w)), $"{t.Name} differs");
        }
    }

    [Fact]
    public void Optimize_LargeModel_TextReport_ShowsPeakRssNextToLargestTensor()
    {
        var info = Generate("in");
        var r = CliHarness.Run("optimize", info.ModelPath, "-o", _f.PathOf("out/m.onnx"), "--target", "plugin", "--verify", "nodes");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("verified node by node", r.Out);
        Assert.Matches(@"memory: peak RSS [\d,.]+ MiB \(VmHWM, whole process\), largest tensor [\d,.]+ MiB", r.Out);
    }

    [Fact]
    public void OptimizeAuto_ModelOverTheAutoLimit_LowersPortableWithoutTiming_WarnsAndStaysNodeByNode()
    {
        // Timing a node's candidates side by side holds its weights once per candidate session: over the limit, auto
        // must not time (the large-model memory bound) and says which target it used instead.
        var info = Generate("in");
        var output = _f.PathOf("out/large.onnx");
        var timer = new CountingTimer();
        CliHarness.Result r;
        using (CliHooks.OverrideAuto(timer, _f.PathOf("auto-cache"), maxModelBytes: 1 << 20))
            r = CliHarness.Run("optimize", info.ModelPath, "-o", output, "--verify", "nodes", "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Equal(0, timer.Calls);
        Assert.Contains("--target auto", r.Err);
        Assert.Contains("--target portable", r.Err);
        var json = r.Json();
        Assert.Equal("portable", json.GetProperty("target").GetString());
        Assert.Equal(info.Layers, json.GetProperty("nodes").EnumerateArray().Count(n => n.GetProperty("rewritten").GetBoolean()));
        Assert.True(json.GetProperty("verification").GetProperty("passed").GetBoolean());
    }

    [Fact]
    public void OptimizeAuto_ModelUnderTheAutoLimit_StillTimes()
    {
        var info = Generate("in");
        var timer = new CountingTimer();
        CliHarness.Result r;
        using (CliHooks.OverrideAuto(timer, _f.PathOf("auto-cache"), maxModelBytes: 1L << 40))
            r = CliHarness.Run("optimize", info.ModelPath, "-o", _f.PathOf("out/large.onnx"), "--verify", "nodes", "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.True(timer.Calls > 0);
        Assert.DoesNotContain("--target portable", r.Err);
        Assert.Equal("auto", r.Json().GetProperty("target").GetString());
    }

    /// <summary>Counts timing requests; every candidate "takes" 1 ms, so nothing beats unchanged.</summary>
    private sealed class CountingTimer : OnnxDeconv.GraphRewrite.Timing.ICandidateTimer
    {
        public int Calls;
        public IReadOnlyList<double> Time(string what, IReadOnlyList<OnnxDeconv.GraphRewrite.Timing.TimedModel> candidates)
        {
            Interlocked.Increment(ref Calls);
            return candidates.Select(_ => 1.0).ToList();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Optimize_LargeModel_CorruptedRewrite_CaughtByVerifyNodes_NothingWritten(bool corruptWeight)
    {
        var info = Generate("in");
        // A plausible lowering bug: the phase interleave of one rewritten node uses the wrong channel order, or one
        // streamed (spilled) weight holds a wrong value while the nodes are right.
        OptimizeResult Corrupt(ModelProto m, OptimizeOptions o)
        {
            var result = Optimizer.Run(m, o);
            if (corruptWeight)
            {
                var w = result.Model.Graph.Initializer.First(t => ExternalData.IsExternal(t) && t.Name.Contains("polyphase_W", StringComparison.Ordinal));
                var values = ModelIO.TensorFloats(result.Model, w);
                int at = Array.FindIndex(values, v => v != 0);
                values[at] += 1f;
                var inline = Tensors.FromFloats(w.Name, [.. w.Dims], values);
                result.Model.Graph.Initializer[result.Model.Graph.Initializer.IndexOf(w)] = inline;
                return result;
            }
            var d2s = result.Model.Graph.Node.First(n => n.OpType == Ops.DepthToSpace.OpType);
            var mode = d2s.Attribute.First(a => a.Name == Ops.DepthToSpace.Mode);
            mode.S = Google.Protobuf.ByteString.CopyFromUtf8(mode.S.ToStringUtf8() == Ops.DepthToSpace.ModeCrd ? Ops.DepthToSpace.ModeDcr : Ops.DepthToSpace.ModeCrd);
            return result;
        }
        var output = _f.PathOf("out/large.onnx");
        CliHarness.Result r;
        using (CliHooks.Override(optimizer: Corrupt))
            r = CliHarness.Run("optimize", info.ModelPath, "-o", output, "--target", "portable", "--verify", "nodes");
        Assert.True(r.Code == ExitCodes.VerificationFailed, r.ToString());
        Assert.Contains("NOT written", r.Out);
        Assert.Contains("fail", r.Out);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.Exists(_f.PathOf("out")) ? Directory.GetFiles(_f.PathOf("out")) : []); // spill file removed too
    }

    [Theory]
    [InlineData("portable")]
    [InlineData("plugin")]
    public void Optimize_ExternalDcgan_VerifyNodes_FoldsBatchNorm_AndMatchesWholeModel(string target)
    {
        // Each rewritten value spans several original nodes here (ConvTranspose + BatchNorm [+ ReLU for the plugin]).
        var m = ModelIO.Load(Path.Combine(OnnxDeconv.TestSupport.RepoPaths.DemoModels, "dcgan_generator.onnx"));
        var input = Path.Combine(Directory.CreateDirectory(_f.PathOf("dcgan")).FullName, "dcgan.onnx");
        ModelIO.Save(m, input, new ModelSaveOptions { ExternalDataThreshold = 1024 });
        var output = _f.PathOf($"out/{target}.onnx");
        var r = CliHarness.Run("optimize", input, "-o", output, "--target", target, "--verify", "nodes", "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Equal(5, r.Json().GetProperty("verification").GetProperty("outputs").GetArrayLength());
        var written = ModelIO.Load(output);
        Assert.DoesNotContain(written.Graph.Node, n => n.OpType is Ops.ConvTranspose.OpType or Ops.BatchNormalization.OpType);
        var v = CliHarness.Run("verify", input, output);
        Assert.True(v.Code == ExitCodes.Ok, v.ToString());
    }

    [Fact]
    public void Optimize_VerifyNodes_WeightOnlyCorruption_IsCaught()
    {
        // Same nodes, different weight: the isolated check must compare constants too, not only node definitions.
        var input = _f.Save(ConvTranspose(), "in.onnx");
        int code; string stdout;
        using (CliHooks.Override(optimizer: BrokenRewrite))
            (code, stdout, _) = Run("optimize", input, "-o", _f.PathOf("out.onnx"), "--target", "portable", "--verify", "nodes");
        Assert.Equal(ExitCodes.VerificationFailed, code);
        Assert.False(File.Exists(_f.PathOf("out.onnx")));
        Assert.Contains("NOT written", stdout);
    }

    [Fact]
    public void Optimize_VerifyNodes_FaithfulRewrite_Passes()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        int code; string stdout;
        using (CliHooks.Override(optimizer: FaithfulRewrite))
            (code, stdout, _) = Run("optimize", input, "-o", _f.PathOf("out.onnx"), "--target", "portable", "--verify", "nodes");
        Assert.True(code == ExitCodes.Ok, stdout);
        Assert.Contains("PASS: 1/1 output(s)", stdout);
    }

    [Theory]
    [InlineData(new string[0], "model")]                 // auto: a small model runs whole
    [InlineData(new[] { "--verify", "model" }, "model")]
    [InlineData(new[] { "--verify", "nodes" }, "nodes")]
    public void Optimize_VerifyMode_IsChosenAndReported(string[] extra, string expected)
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var r = CliHarness.Run(["optimize", input, "-o", _f.PathOf("out.onnx"), "--target", "portable", "--json", .. extra]);
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Equal(expected, r.Json().GetProperty("verifyMode").GetString());
    }

    [Theory]
    [InlineData("--no-verify")]
    [InlineData("--verify=none")]
    public void Optimize_VerifyNone_AndNoVerifyAlias_WriteUnverified(string flag)
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var r = CliHarness.Run("optimize", input, "-o", _f.PathOf("out.onnx"), "--target", "portable", flag, "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var json = r.Json();
        Assert.True(json.GetProperty("verificationSkipped").GetBoolean());
        Assert.Equal(JsonValueKind.Null, json.TryGetProperty("verifyMode", out var m) ? m.ValueKind : JsonValueKind.Null);
    }

    [Fact]
    public void Optimize_VerifyUnknownMode_IsRefused()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var r = CliHarness.Run("optimize", input, "-o", _f.PathOf("out.onnx"), "--verify", "sometimes");
        Assert.NotEqual(ExitCodes.Ok, r.Code);
        Assert.False(File.Exists(_f.PathOf("out.onnx")));
    }
}
