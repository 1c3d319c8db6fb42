using System.Text.Json;
using OnnxDeconv.Cli.Bench;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>`bench --suite qdq`: the QDQ layer suite's shape and refusals (tiny budgets; no time is asserted, speed lives in the report).</summary>
public class QdqBenchCommandTests
{
    [Fact]
    public void QdqSuite_IsTheGroupOneConvTransposeLayers()
    {
        Assert.Equal(["dcgan1", "dcgan2", "dcgan3", "dcgan4", "unet1", "unet2", "sr", "1d", "3d"], QdqLayerBench.Suite.Select(l => l.ShortName));
    }

    [Fact]
    public void BenchSuiteQdq_OneLayer_TimesOriginalAndRewrittenAfterTheStepCheck()
    {
        using var tmp = new TempDir();
        var r = Run("bench", "--suite", "qdq", "--layers", "dcgan4", "--threads", "1", "--seconds", "0.01", "--json", tmp.File("q.json"));
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("DCGAN 64->3 k4 s2 p1 32x32", r.Out);
        Assert.Contains("geomean", r.Out);
        var layer = Assert.Single(JsonDocument.Parse(File.ReadAllText(tmp.File("q.json"))).RootElement.GetProperty("layers").EnumerateArray());
        Assert.Equal("dcgan4", layer.GetProperty("ShortName").GetString());
        Assert.True(layer.GetProperty("originalMs").GetDouble() > 0 && layer.GetProperty("rewrittenMs").GetDouble() > 0);
        Assert.True(layer.GetProperty("StepsOff").GetInt64() <= 0.01 * layer.GetProperty("Elements").GetInt64());
    }

    [Fact]
    public void BenchSuiteQdq_WithCandidates_IsAUsageError()
    {
        var r = Run("bench", "--suite", "qdq", "--candidates", "plugin", "--threads", "1");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("--candidates does not apply to --suite qdq", r.Err);
    }
}
