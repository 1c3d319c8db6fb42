using System.Text.Json;
using System.Xml.Linq;
using OnnxDeconv.Cli.Bench;
using OnnxDeconv.Cli.Commands;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>
/// `onnx-deconv bench`: the outputs it produces and how it refuses bad input. Tiny budgets (a few rounds) keep these
/// fast; nothing here asserts on a time (speed lives in docs/benchmarks.md).
/// </summary>
public class BenchCommandTests
{
    private static string Demo(string name) => Path.Combine(RepoPaths.DemoModels, name);

    [Fact]
    public void Bench_on_a_demo_model_prints_the_table_and_writes_json_and_an_svg_chart()
    {
        using var tmp = new TempDir();
        // auto's choice scripted (the plugin wins): whether "auto" changes the model, and so is timed, must not depend on the machine.
        CliHarness.Result r;
        using (CliHooks.OverrideAuto(new ScriptedCliTimer(AutoTuner.Plugin), tmp.File("cache")))
            r = Run("bench", Demo("depthwise_convtranspose.onnx"), "--seconds", "0.01", "--threads", "1,2", "--json", tmp.File("b.json"), "--chart", tmp.File("b.svg"),
                "--plugin-so", "none");

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("original", r.Out);
        Assert.Contains("Slowest nodes at 2 thread(s)", r.Out);
        var root = JsonDocument.Parse(File.ReadAllText(tmp.File("b.json"))).RootElement;
        var model = root.GetProperty("Models").EnumerateArray().Single();
        var runs = model.GetProperty("Runs").EnumerateArray().ToList();
        Assert.Equal([1, 2], runs.Select(x => x.GetProperty("Threads").GetInt32()));
        foreach (var run in runs)
        {
            var variants = run.GetProperty("Variants").EnumerateArray().ToList();
            Assert.Equal(["original", "portable", "plugin", "auto"], variants.Select(v => v.GetProperty("Name").GetString()));
            foreach (var v in variants)
            {
                Assert.True(v.GetProperty("Timing").GetProperty("Runs").GetInt32() >= 5);
                Assert.True(v.GetProperty("Speedup").GetDouble() > 0);
                // The profiler saw at least the model's main node.
                Assert.NotEmpty(v.GetProperty("Nodes").EnumerateArray());
            }
        }
        var svg = XDocument.Load(tmp.File("b.svg"));
        Assert.Equal("svg", svg.Root!.Name.LocalName);
    }

    [Fact]
    public void Bench_chart_with_png_extension_writes_a_png()
    {
        using var tmp = new TempDir();
        var r = Run("bench", Demo("depthwise_convtranspose.onnx"), "--seconds", "0.01", "--threads", "1", "--targets", "portable", "--chart", tmp.File("b.png"));

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        byte[] signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
        Assert.Equal(signature, File.ReadAllBytes(tmp.File("b.png")).Take(8));
    }

    [Fact]
    public void Bench_suite_layers_runs_one_convtranspose_and_one_resize_conv_layer()
    {
        using var tmp = new TempDir();
        var r = Run("bench", "--suite", "layers", "--layers", "dcgan4,resize64", "--threads", "1", "--seconds", "0.01",
            "--json", tmp.File("l.json"), "--out", tmp.File("l.md"), "--plugin-so", "none");

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var layers = JsonDocument.Parse(File.ReadAllText(tmp.File("l.json"))).RootElement.GetProperty("Layers").EnumerateArray().ToList();
        Assert.Equal(["dcgan4", "resize64"], layers.Select(l => l.GetProperty("ShortName").GetString()));
        Assert.Equal(["ort", "zero-insert", "portable", "plugin", "kernel"],
            layers[0].GetProperty("Candidates").EnumerateArray().Select(c => c.GetProperty("Name").GetString()));
        Assert.Equal(["ort", "portable", "plugin"],
            layers[1].GetProperty("Candidates").EnumerateArray().Select(c => c.GetProperty("Name").GetString()));
        // Every column agreed with the reference within |a-b| <= 1e-5 + 1e-4|b| (ratio <= 1) before it was timed.
        foreach (var l in layers)
            foreach (var a in l.GetProperty("AgreementWithOrt").EnumerateObject())
                Assert.InRange(a.Value.GetDouble(), 0, 1);
        string md = File.ReadAllText(tmp.File("l.md"));
        Assert.Contains("<!-- bench:begin", md);
        Assert.Contains("Resize x2 + Conv3x3 64->64 64x64", md);
        Assert.Contains("<!-- bench:end -->", md);
    }

    [Fact]
    public void Bench_suite_times_the_published_so_beside_the_in_process_plugin()
    {
        // What Python/C/C++ hosts run: the same rewritten layer through the published libonnxdeconv.so.
        using var tmp = new TempDir();
        string so = NativeBuild.Library;
        var r = Run("bench", "--suite", "layers", "--layers", "dcgan4,resize64", "--candidates", "plugin,plugin-so", "--threads", "1",
            "--seconds", "0.01", "--json", tmp.File("l.json"), "--out", tmp.File("l.md"), "--plugin-so", so);

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var root = JsonDocument.Parse(File.ReadAllText(tmp.File("l.json"))).RootElement;
        foreach (var l in root.GetProperty("Layers").EnumerateArray())
        {
            Assert.Equal(["ort", "plugin", "plugin-so"], l.GetProperty("Candidates").EnumerateArray().Select(c => c.GetProperty("Name").GetString()));
            Assert.InRange(l.GetProperty("AgreementWithOrt").GetProperty("plugin-so").GetDouble(), 0, 1);
        }
        Assert.Contains("kernel ", root.GetProperty("PluginSo").GetString()); // which build the dispatcher chose
        string md = File.ReadAllText(tmp.File("l.md"));
        Assert.Contains("### The plugin as hosts load it: published libonnxdeconv.so vs in-process", md);
        Assert.Contains("| DCGAN 64->3 k4 s2 p1 32x32 |", md);
    }

    [Fact]
    public void Bench_demo_model_with_the_so_times_each_plugin_target_through_it_too()
    {
        using var tmp = new TempDir();
        var r = Run("bench", Demo("depthwise_convtranspose.onnx"), "--seconds", "0.01", "--threads", "1", "--targets", "portable,plugin",
            "--json", tmp.File("b.json"), "--plugin-so", NativeBuild.Library);

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        var run = JsonDocument.Parse(File.ReadAllText(tmp.File("b.json"))).RootElement.GetProperty("Models").EnumerateArray().Single()
            .GetProperty("Runs").EnumerateArray().Single();
        // portable needs no plugin, so only the plugin target gets a "-so" twin.
        Assert.Equal(["original", "portable", "plugin", "plugin-so"], run.GetProperty("Variants").EnumerateArray().Select(v => v.GetProperty("Name").GetString()));
    }

    [Theory]
    [InlineData("/nonexistent/libonnxdeconv.so", "plugin", "--plugin-so /nonexistent/libonnxdeconv.so: file not found")]
    [InlineData("none", "plugin-so", "--candidates plugin-so: --plugin-so none")]
    public void Bench_plugin_so_that_cannot_be_had_is_exit_3(string so, string candidates, string message)
    {
        var r = Run("bench", "--suite", "layers", "--layers", "dcgan4", "--candidates", candidates, "--threads", "1", "--seconds", "0.01", "--plugin-so", so);
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains(message, r.Err);
    }

    [Fact]
    public void Sweep_has_at_least_60_distinct_real_layers_plus_deterministic_random_ones()
    {
        var layers = SweepSuite.Layers;
        Assert.True(layers.Count >= 60 + SweepSuite.RandomCount, $"{layers.Count} layers");
        Assert.Equal(layers.Count, layers.Select(l => l.ShortName).Distinct().Count());
        // None of them is one of the suite's tuned layers (same shapes and attributes).
        var tuned = Layer.Suite.Select(l => (string.Join(",", l.InputShape), string.Join(",", l.WeightShape))).ToHashSet();
        var retuned = layers.Where(l => tuned.Contains((string.Join(",", l.InputShape), string.Join(",", l.WeightShape)))).Select(l => l.ShortName).ToList();
        Assert.True(retuned.Count == 0, "sweep layers that repeat a suite layer: " + string.Join(", ", retuned));
        // Every layer resolves, and ONNX Runtime would accept it (output_padding below the stride).
        Assert.All(layers, l => Assert.False(l.Geometry.OrtRejectsOutputPadding, l.Name));
        Assert.Contains(layers, l => l.InputShape[0] == 8);
        Assert.Contains(layers, l => l.Kind == LayerKind.ResizeConv);
        // Same seed, same random layers; another seed, others.
        Assert.Equal(SweepSuite.RandomLayers(13, 5).Select(l => l.Name), SweepSuite.RandomLayers(13, 5).Select(l => l.Name));
        Assert.NotEqual(SweepSuite.RandomLayers(13, 5).Select(l => l.Name), SweepSuite.RandomLayers(14, 5).Select(l => l.Name));
    }

    [Fact]
    public void Bench_suite_sweep_writes_geomean_and_worst_layer()
    {
        using var tmp = new TempDir();
        var r = Run("bench", "--suite", "sweep", "--layers", "gan-z,fsr-2,taesd-32", "--threads", "1", "--seconds", "0.01",
            "--out", tmp.File("sweep.md"), "--json", tmp.File("sweep.json"), "--plugin-so", "none");

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("plugin-so column left out: --plugin-so none", r.Err);
        var layers = JsonDocument.Parse(File.ReadAllText(tmp.File("sweep.json"))).RootElement.GetProperty("Layers").EnumerateArray().ToList();
        Assert.Equal(["gan-z", "fsr-2", "taesd-32"], layers.Select(l => l.GetProperty("ShortName").GetString()));
        // The sweep's default columns leave zero insertion out.
        Assert.Equal(["ort", "portable", "plugin", "kernel"], layers[0].GetProperty("Candidates").EnumerateArray().Select(c => c.GetProperty("Name").GetString()));
        string md = File.ReadAllText(tmp.File("sweep.md"));
        Assert.Contains("| FSRCNN x2 56->1 k9 s2 p4 op1 64x64 |", md);
        Assert.Contains("- **plugin** vs ORT over 3 layers: geometric mean", md);
        Assert.Contains("worst ", md);
    }

    [Fact]
    public void Bench_keeps_hand_written_text_around_the_generated_block()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("doc.md"), "intro\n\n<!-- bench:begin (generated by tools/bench; edit outside these markers) -->\nold\n<!-- bench:end -->\n\noutro\n");
        var r = Run("bench", "--suite", "layers", "--layers", "dcgan4", "--candidates", "portable", "--threads", "1", "--seconds", "0.01", "--out", tmp.File("doc.md"));

        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        string md = File.ReadAllText(tmp.File("doc.md"));
        Assert.StartsWith("intro\n\n<!-- bench:begin (generated by onnx-deconv bench", md);
        Assert.EndsWith("<!-- bench:end -->\n\noutro\n", md);
        Assert.DoesNotContain("\nold\n", md);
    }

    [Fact]
    public void Bench_stops_with_exit_2_when_a_rewrite_computes_something_else()
    {
        using var tmp = new TempDir();
        using (CliHooks.Override(optimizer: VerifyFixtures.BrokenRewrite))
        {
            var r = Run("bench", Demo("depthwise_convtranspose.onnx"), "--seconds", "0.01", "--threads", "1", "--targets", "portable", "--json", tmp.File("b.json"));
            Assert.True(r.Code == ExitCodes.VerificationFailed, r.ToString());
            Assert.Contains("the portable rewrite differs from the original", r.Err);
        }
        Assert.False(File.Exists(tmp.File("b.json")));
    }

    [Theory]
    [InlineData("missing", "model file not found")]
    [InlineData("--targets=portable,fastest", "unknown target(s) fastest")]
    [InlineData("--threads=0", "--threads: '0'")]
    [InlineData("--threads=1,x", "--threads: '1,x'")]
    [InlineData("--seconds=0", "--seconds")]
    [InlineData("--chart=speed.gif", "must end in .svg or .png")]
    [InlineData("--json=/no-such-folder/b.json", "the folder /no-such-folder does not exist")]
    public void Bench_rejects_bad_arguments_with_exit_3(string bad, string message)
    {
        string[] args = bad == "missing"
            ? ["bench", Path.Combine(Path.GetTempPath(), "no-such-model.onnx")]
            : ["bench", Demo("depthwise_convtranspose.onnx"), bad];
        var r = Run(args);
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains(message, r.Err);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void Bench_rejects_a_file_that_is_not_an_onnx_model_with_exit_3()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("junk.onnx"), "this is not a protobuf");
        var r = Run("bench", tmp.File("junk.onnx"), "--seconds", "0.01");
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains("junk.onnx", r.Err);
    }

    [Theory]
    [InlineData(new[] { "bench" }, "give a MODEL to time, or --suite")]
    [InlineData(new[] { "bench", "--suite", "layers", "--layers", "dcgan9" }, "unknown layer(s) dcgan9")]
    [InlineData(new[] { "bench", "--suite", "layers", "--candidates", "gpu" }, "unknown candidate(s) gpu")]
    [InlineData(new[] { "bench", "--suite", "fast" }, "fast")]
    public void Bench_rejects_a_bad_suite_request_with_exit_3(string[] args, string message)
    {
        var r = Run(args);
        Assert.True(r.Code == ExitCodes.InvalidInput, r.ToString());
        Assert.Contains(message, r.Err);
    }

    [Fact]
    public void Thread_counts_default_to_one_and_all_cores_and_keep_the_given_order()
    {
        Assert.Equal(new[] { 1, Environment.ProcessorCount }.Distinct(), BenchCommand.ParseThreads(null));
        Assert.Equal([2, 1], BenchCommand.ParseThreads("2, 1,2"));
        Assert.Throws<UsageException>(() => BenchCommand.ParseThreads("-1"));
    }

    [Fact]
    public void Profiler_trace_gives_the_median_kernel_time_per_node_slowest_first()
    {
        const string trace = """
        [
          {"cat":"Session","name":"model_loading_uri","dur":900},
          {"cat":"Node","name":"conv_fence_before","dur":1,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"conv_kernel_time","dur":300,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"conv_kernel_time","dur":100,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"conv_kernel_time","dur":200,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"d2s_kernel_time","dur":500,"args":{"op_name":"DepthToSpace"}},
          {"cat":"Node","name":"d2s_fence_after","dur":2,"args":{"op_name":"DepthToSpace"}}
        ]
        """;
        var nodes = NodeProfile.Parse(trace);
        Assert.Equal(["d2s", "conv"], nodes.Select(n => n.Node));
        Assert.Equal(new NodeTime("conv", "Conv", 0.2, 3), nodes[1]);
        Assert.Equal(0.5, nodes[0].MedianMs);
    }
}
