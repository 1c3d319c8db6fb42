using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>optimize says when the model it wrote needs the plugin, and how .NET, Python and C/C++ hosts load it.</summary>
public class PluginNoticeTests
{
    private static readonly string Dcgan = Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx");

    [Fact]
    public void A_model_written_with_custom_op_nodes_says_it_needs_the_plugin_and_how_each_host_loads_it()
    {
        using var tmp = new TempDir();
        var r = Run("optimize", Dcgan, "-o", tmp.File("plugin.onnx"), "--target", "plugin");
        Assert.True(r.Code == 0, r.ToString());
        int nodes = ModelIO.Load(tmp.File("plugin.onnx")).Graph.Node.Count(n => n.Domain == "ai.onnxdeconv");
        Assert.True(nodes > 0);
        Assert.Contains($"plugin: the written model needs the OnnxDeconv plugin: {nodes} node(s) of", r.Out);
        Assert.Contains("ai.onnxdeconv:TransposedConv, which a plain ONNX Runtime refuses to load.", r.Out);
        Assert.Contains(".NET:   using OnnxDeconv.GraphRewrite.Runtime;", r.Out);
        Assert.Contains("sessionOptions.RegisterOnnxDeconv();", r.Out);
        Assert.Contains("so.register_custom_ops_library(\"/path/to/libonnxdeconv.so\")", r.Out);
        Assert.Contains("C/C++:  OrtApi::RegisterCustomOpsLibrary_V2(session_options,", r.Out);
        Assert.Contains("dotnet publish src/OnnxDeconv -c Release -r linux-x64", r.Out);
        var notice = r.Out[r.Out.IndexOf("plugin: the written model", StringComparison.Ordinal)..].Split('\n');
        Assert.All(notice, l => Assert.True(l.TrimEnd('\r').Length <= 80, l));

        var json = Run("optimize", Dcgan, "-o", tmp.File("plugin2.onnx"), "--target", "plugin", "--json").Json();
        var req = json.GetProperty("requiresPlugin");
        Assert.Equal(nodes, req.GetProperty("nodes").GetInt32());
        Assert.Equal("ai.onnxdeconv", req.GetProperty("domain").GetString());
        Assert.Equal([".NET", "C/C++", "Python"], req.GetProperty("register").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_portable_model_needs_nothing_and_the_report_says_nothing_about_the_plugin()
    {
        using var tmp = new TempDir();
        var r = Run("optimize", Dcgan, "-o", tmp.File("portable.onnx"), "--target", "portable");
        Assert.True(r.Code == 0, r.ToString());
        Assert.DoesNotContain("needs the OnnxDeconv plugin", r.Out);

        var json = Run("optimize", Dcgan, "-o", tmp.File("portable2.onnx"), "--target", "portable", "--json").Json();
        Assert.False(json.TryGetProperty("requiresPlugin", out _));
    }

    [Fact]
    public void Info_loads_a_model_that_optimize_rewrote_for_the_plugin()
    {
        // info probes shapes through ONNX Runtime, which refuses ai.onnxdeconv nodes unless the plugin is registered.
        using var tmp = new TempDir();
        Assert.Equal(0, Run("optimize", Dcgan, "-o", tmp.File("plugin.onnx"), "--target", "plugin").Code);
        var r = Run("info", tmp.File("plugin.onnx"), "--json");
        Assert.True(r.Code == 0, r.ToString());
        Assert.DoesNotContain("is not a registered function/op", r.Out + r.Err);
        var json = r.Json();
        Assert.Equal("probed", json.GetProperty("shapeSource").GetString());
        Assert.Contains("ai.onnxdeconv node(s): the model runs only with the OnnxDeconv plugin.", Run("info", tmp.File("plugin.onnx")).Out);
        Assert.True(json.GetProperty("ops").EnumerateArray().Any(o => o.GetProperty("op").GetString() == "ai.onnxdeconv.TransposedConv"), r.Out);
    }
}
