using System.Runtime.CompilerServices;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

internal static class TestCacheDirectory
{
    /// <summary>
    /// Before any test runs: a test that reaches the real decision cache (optimize defaults to --target auto) writes to a
    /// temp folder, never to the user's ~/.cache.
    /// </summary>
    [ModuleInitializer]
    internal static void Init()
    {
        string dir = Directory.CreateTempSubdirectory("onnx-deconv-cli-cache-").FullName;
        Environment.SetEnvironmentVariable(DecisionCache.DirectoryVariable, dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { } // best effort: a temp folder
        };
    }
}

/// <summary>Per node, <paramref name="winner"/> takes 1 ms and the rest 10 ms; whole model: the result is faster. Counts node timings.</summary>
internal sealed class ScriptedCliTimer(string winner) : ICandidateTimer
{
    public int NodeCalls { get; private set; }
    public List<string> Labels { get; } = [];

    public IReadOnlyList<double> Time(string subject, IReadOnlyList<TimedModel> models)
    {
        if (subject != "whole model") NodeCalls++;
        Labels.AddRange(models.Select(m => m.Label));
        return models.Select(m => subject == "whole model" ? (m.Label == "original" ? 2.0 : 1.0) : m.Label == winner ? 1.0 : 10.0).ToList();
    }
}

// optimize --target auto (the default) with the timing scripted; outputs verified by optimize at
// |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4 (float32 defaults).
public sealed class OptimizeAutoTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    private readonly string _cache = Directory.CreateTempSubdirectory("onnx-deconv-auto-cli-").FullName;

    public void Dispose()
    {
        _f.Dispose();
        Directory.Delete(_cache, recursive: true);
    }

    [Fact]
    public void DefaultTarget_IsAuto_ChoiceFollowsTheTimer_ReportListsCandidates()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var output = _f.PathOf("out.onnx");
        var timer = new ScriptedCliTimer(AutoTuner.PortablePerPhase);
        CliHarness.Result r;
        using (CliHooks.OverrideAuto(timer, _cache))
            r = CliHarness.Run("optimize", input, "-o", output, "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var json = r.Json();
        Assert.Equal("auto", json.GetProperty("target").GetString());
        Assert.True(json.GetProperty("written").GetBoolean());
        var node = Assert.Single(json.GetProperty("nodes").EnumerateArray());
        Assert.Equal(AutoTuner.PortablePerPhase, node.GetProperty("choice").GetString());
        var labels = node.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("label").GetString()).ToList();
        Assert.Equal([AutoTuner.Unchanged, AutoTuner.PortableCombined, AutoTuner.PortablePerPhase, AutoTuner.Plugin], labels);
        Assert.Equal(1.0, json.GetProperty("wholeModel").GetProperty("resultMs").GetDouble());
    }

    [Fact]
    public void TextReport_ShowsCandidateTable_AndCachedOnTheSecondRun()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var first = new ScriptedCliTimer(AutoTuner.PortableCombined);
        using (CliHooks.OverrideAuto(first, _cache))
        {
            var r1 = CliHarness.Run("optimize", input, "-o", _f.PathOf("a.onnx"));
            Assert.True(r1.Code == ExitCodes.Ok, r1.ToString());
            Assert.Contains("portable-perphase", r1.Out);
            Assert.Contains("whole model (median): original 2.000 ms, optimized 1.000 ms (2.00x)", r1.Out);
        }
        var second = new ScriptedCliTimer(AutoTuner.Plugin);
        using (CliHooks.OverrideAuto(second, _cache))
        {
            var r2 = CliHarness.Run("optimize", input, "-o", _f.PathOf("b.onnx"));
            Assert.True(r2.Code == ExitCodes.Ok, r2.ToString());
            Assert.Contains("yes (cached)", r2.Out);
            Assert.Contains("whole model (median, cached)", r2.Out);
        }
        Assert.Equal(1, first.NodeCalls);
        Assert.Equal(0, second.NodeCalls);
    }

    [Fact]
    public void NoCache_NeitherReadsNorWrites()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var timer = new ScriptedCliTimer(AutoTuner.PortableCombined);
        using (CliHooks.OverrideAuto(timer, _cache))
            for (int i = 0; i < 2; i++)
                Assert.Equal(ExitCodes.Ok, CliHarness.Run("optimize", input, "-o", _f.PathOf($"o{i}.onnx"), "--no-cache").Code);
        Assert.Equal(2, timer.NodeCalls);
        Assert.False(File.Exists(Path.Combine(_cache, DecisionCache.FileName)));
    }

    [Fact]
    public void CorruptCache_WarnsAndStillOptimizes()
    {
        File.WriteAllText(Path.Combine(_cache, DecisionCache.FileName), "\0\0garbage");
        var input = _f.Save(ConvTranspose(), "in.onnx");
        CliHarness.Result r;
        using (CliHooks.OverrideAuto(new ScriptedCliTimer(AutoTuner.PortableCombined), _cache))
            r = CliHarness.Run("optimize", input, "-o", _f.PathOf("out.onnx"));
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("warning: decision cache", r.Err);
        Assert.Contains("ignored", r.Err);
    }

    [Fact]
    public void PortableOnly_PluginNeverTimedNorUsed()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var output = _f.PathOf("out.onnx");
        var timer = new ScriptedCliTimer(AutoTuner.Plugin);
        using (CliHooks.OverrideAuto(timer, _cache))
            Assert.Equal(ExitCodes.Ok, CliHarness.Run("optimize", input, "-o", output, "--portable-only").Code);
        Assert.DoesNotContain(AutoTuner.Plugin, timer.Labels);
        Assert.False(OnnxDeconvSessionOptions.UsesPlugin(ModelIO.Load(output)));
    }

    [Theory]
    [InlineData("--target", "portable", "--portable-only")]
    [InlineData("--target", "plugin", "--portable-only")]
    [InlineData("--budget-ms", "0")]
    [InlineData("--threads", "0")]
    public void BadAutoOptions_ExitThree_NothingWritten(params string[] extra)
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var output = _f.PathOf("out.onnx");
        var r = CliHarness.Run(["optimize", input, "-o", output, .. extra]);
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains(extra.First(a => a is "--portable-only" or "--budget-ms" or "--threads"), r.Err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void RealTimer_DemoModel_VerifiedAndEveryNodeListsTimedCandidates()
    {
        var input = Path.Combine(RepoPaths.DemoModels, "sr_block.onnx");
        var r = CliHarness.Run("optimize", input, "-o", _f.PathOf("sr.onnx"), "--budget-ms", "10", "--threads", "1", "--no-cache", "--json");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var json = r.Json();
        // Either something was rewritten and optimize verified it, or the written model is the input, byte for byte.
        if (json.GetProperty("changed").GetBoolean())
            Assert.True(json.GetProperty("verification").GetProperty("passed").GetBoolean());
        else
            Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(_f.PathOf("sr.onnx")));
        var timed = json.GetProperty("nodes").EnumerateArray().Where(n => n.TryGetProperty("candidates", out _)).ToList();
        Assert.NotEmpty(timed);
        foreach (var n in timed)
            Assert.Contains(n.GetProperty("candidates").EnumerateArray(), c => c.GetProperty("medianMs").ValueKind == System.Text.Json.JsonValueKind.Number);
    }
}
