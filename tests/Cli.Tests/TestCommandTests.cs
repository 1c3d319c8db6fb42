using System.Xml.Linq;
using OnnxDeconv.Cli;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

// test compares with the stored outputs at |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4 (float32 defaults).
public sealed class TestCommandTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    private static string Case(string name) => Path.Combine(RepoPaths.Conformance, name);

    [Fact]
    public void Test_ConformanceFolders_PrintLinePerCase_SummaryLine_AndValidJUnit()
    {
        var junit = _f.PathOf("report.xml");
        var (code, stdout, _) = Run("test", Case("test_convtranspose"), Case("test_convtranspose_group_2"), "--junit", junit);
        Assert.Equal(ExitCodes.Ok, code);
        var lines = stdout.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.StartsWith("PASS test_convtranspose ", lines[0]);
        Assert.StartsWith("PASS test_convtranspose_group_2 ", lines[1]);
        Assert.Equal("2 passed, 0 failed", lines[^1]);
        var suite = XDocument.Load(junit).Root!.Element("testsuite")!;
        Assert.Equal("2", suite.Attribute("tests")!.Value);
        Assert.Equal("0", suite.Attribute("failures")!.Value);
        Assert.Equal(2, suite.Elements("testcase").Count());
    }

    [Theory]
    [InlineData("portable")]
    [InlineData("plugin")]
    public void Test_RewriteEveryConformanceConvTranspose_NoneLeft_AllPass(string target)
    {
        // The real optimizer (no fake): every ConvTranspose conformance case, weights frozen, rewritten and compared
        // with the stored outputs; old-IR cases (weights already initializers) are rewritten too.
        var cases = RepoPaths.ConformanceCases("convtranspose").ToArray();
        Assert.True(cases.Length >= 14, $"expected the 14 ConvTranspose conformance cases, found {cases.Length}");
        var (code, stdout, stderr) = Run(["test", .. cases, "--rewrite", "--freeze-inputs", "--target", target]);
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.DoesNotContain("ConvTranspose left: 1", stdout);
        Assert.EndsWith($"{cases.Length} passed, 0 failed", stdout.TrimEnd());
    }

    [Theory]
    [InlineData(AutoTuner.Plugin, "ConvTranspose left: 0", "rewritten 1/1")]
    [InlineData(AutoTuner.Unchanged, "ConvTranspose left: 1", "rewritten 0/1")]
    public void Test_RewriteTargetAuto_KeepsTheTimersChoice_AndPassesEitherWay(string winner, string left, string rewritten)
    {
        // auto with the timing scripted: the winning candidate is what the case runs, checked against the stored outputs.
        var timer = new ScriptedCliTimer(winner);
        var cache = _f.PathOf("cache");
        (int Exit, string Out, string Err) r;
        using (CliHooks.OverrideAuto(timer, cache))
            r = Run("test", Case("test_convtranspose"), "--rewrite", "--freeze-inputs", "--target", "auto");
        Assert.True(r.Exit == ExitCodes.Ok, r.Out + r.Err);
        Assert.Contains(left, r.Out);
        Assert.Contains(rewritten, r.Out);
        Assert.Equal(1, timer.NodeCalls);
        Assert.EndsWith("1 passed, 0 failed", r.Out.TrimEnd());
    }

    [Theory]
    [InlineData("gtcrn-simple", "portable")]
    [InlineData("gtcrn-simple", "plugin")]
    [InlineData("vaelight-sd-preview", "portable")]
    [InlineData("vaelight-sd-preview", "plugin")]
    public void Test_RealModels_RewrittenEveryConvTranspose_MatchStoredOutputs(string model, string target)
    {
        // vaelight has dynamic H/W: the plugin's shape inference must name unknown dims or ONNX Runtime's memory planner
        // reuses a buffer of the wrong size.
        var (code, stdout, stderr) = Run("test", Path.Combine(RepoPaths.RealModels, model), "--rewrite", "--target", target);
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.Contains("ConvTranspose left: 0", stdout);
        Assert.EndsWith("1 passed, 0 failed", stdout.TrimEnd());
    }

    [Fact]
    public void Test_FreezeInputs_TurnsGraphInputsIntoInitializers_BeforeRewrite()
    {
        ModelProto? seen = null;
        int code; string stdout;
        using (CliHooks.Override(optimizer: (m, o) => { seen = m; return new OptimizeResult(m, []); }))
            (code, stdout, _) = Run("test", "--rewrite", "--freeze-inputs", Case("test_convtranspose_1d"));
        Assert.Equal(ExitCodes.Ok, code);
        Assert.NotNull(seen);
        Assert.Equal(["X"], seen.Graph.Input.Select(i => i.Name));
        Assert.Equal(["W"], seen.Graph.Initializer.Select(t => t.Name));
        Assert.Contains("frozen: W", stdout);
        Assert.Contains("ConvTranspose left: 1", stdout); // the fake rewrite leaves the node in place
        Assert.EndsWith("1 passed, 0 failed", stdout.TrimEnd());
    }

    [Fact]
    public void Test_FreezeInputs_NamedExplicitly_FreezesOnlyThose()
    {
        ModelProto? seen = null;
        using (CliHooks.Override(optimizer: (m, o) => { seen = m; return new OptimizeResult(m, []); }))
            Assert.Equal(ExitCodes.Ok, Run("test", "--rewrite", "--freeze-inputs", "W", Case("test_convtranspose")).Exit);
        Assert.Equal(["W"], seen!.Graph.Initializer.Select(t => t.Name));
    }

    [Fact]
    public void Test_BrokenRewrite_FailsCase_ExitsTwo_AndJUnitRecordsFailure()
    {
        var junit = _f.PathOf("report.xml");
        int code; string stdout;
        using (CliHooks.Override(optimizer: BrokenRewrite))
            (code, stdout, _) = Run("test", "--rewrite", "--freeze-inputs", Case("test_convtranspose"), "--junit", junit);
        Assert.Equal(ExitCodes.VerificationFailed, code);
        Assert.StartsWith("FAIL test_convtranspose ", stdout);
        Assert.EndsWith("0 passed, 1 failed", stdout.TrimEnd());
        Assert.NotNull(XDocument.Load(junit).Root!.Element("testsuite")!.Element("testcase")!.Element("failure"));
    }

    [Fact]
    public void Test_MissingFolder_ExitsThreeNamingIt()
    {
        var (code, _, stderr) = Run("test", _f.PathOf("no-such-cases"));
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("no-such-cases", stderr);
    }
}
