using OnnxDeconv.Cli.Output;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

// Issue 17 item 7: long auto and bench runs draw a progress bar on a terminal and print plain lines otherwise.
// The terminal is pinned per test (CliHarness.RunAt), so the runner's own terminal never decides.
public class ProgressTests
{
    private static string Demo(string name) => Path.Combine(RepoPaths.DemoModels, name);

    /// <summary>What a terminal would show of each redraw: the text between carriage returns and line breaks.</summary>
    private static IEnumerable<string> Screens(string err) => err.Split('\r', '\n');

    private static void AssertBarErasedAndFits(string err, int columns)
    {
        Assert.Contains("\r", err);
        foreach (var s in Screens(err)) Assert.True(s.Length < columns, $"a {s.Length}-column redraw at COLUMNS={columns}: '{s}'");
        // The last bar drawn is blanked out before the command ends (nothing is left over the prompt or the table).
        int lastBar = err.LastIndexOf('█') is var a && a >= 0 ? a : err.LastIndexOf('░');
        Assert.True(lastBar >= 0, "no bar was drawn");
        string after = err[lastBar..];
        Assert.Matches(@"\r +\r", after);
    }

    [Theory]
    [InlineData(80)]
    [InlineData(160)]
    public void Auto_on_a_terminal_draws_one_bar_fitted_to_the_width_and_erases_it(int columns)
    {
        using var tmp = new TempDir();
        Result r;
        using (CliHooks.OverrideAuto(new ScriptedCliTimer(AutoTuner.PortableCombined), tmp.File("cache")))
            r = RunAt(columns.ToString(), ["optimize", Demo("dcgan_generator.onnx"), "-o", tmp.File("out.onnx"), "--target", "auto"], interactive: true);
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("auto  [", r.Err);
        Assert.Contains("node 1/", r.Err);
        Assert.Contains("whole model", r.Err);
        Assert.DoesNotContain("auto: timing", r.Err);
        AssertBarErasedAndFits(r.Err, columns);
        Assert.DoesNotContain("\r", r.Out); // the report on stdout is untouched
    }

    [Fact]
    public void Auto_piped_prints_one_plain_line_per_step()
    {
        using var tmp = new TempDir();
        Result r;
        using (CliHooks.OverrideAuto(new ScriptedCliTimer(AutoTuner.PortableCombined), tmp.File("cache")))
            r = Run("optimize", Demo("dcgan_generator.onnx"), "-o", tmp.File("out.onnx"), "--target", "auto");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.DoesNotContain("\r", r.Err);
        Assert.DoesNotContain("█", r.Err);
        var steps = r.Err.Split('\n').Where(l => l.StartsWith("auto: timing ", StringComparison.Ordinal)).ToList();
        Assert.Contains(steps, l => l.StartsWith("auto: timing node 1/", StringComparison.Ordinal));
        Assert.Contains(steps, l => l.StartsWith("auto: timing whole model", StringComparison.Ordinal));
    }

    [Fact]
    public void Portable_target_shows_no_progress()
    {
        using var tmp = new TempDir();
        var r = RunAt("80", ["optimize", Demo("dcgan_generator.onnx"), "-o", tmp.File("out.onnx"), "--target", "portable"], interactive: true);
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.False(r.Err.Contains('\r'), r.Err.Replace("\r", "<CR>"));
    }

    [Fact]
    public void Bench_on_a_terminal_draws_a_bar_between_result_lines_and_erases_it()
    {
        var r = RunAt("100", ["bench", "--suite", "layers", "--layers", "dcgan4,resize64", "--candidates", "portable", "--threads", "1",
            "--seconds", "0.01", "--plugin-so", "none"], interactive: true);
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.Contains("bench  [", r.Err);
        AssertBarErasedAndFits(r.Err, 100);
        // Each result line is written on a line of its own, not glued to a bar.
        Assert.Contains(Screens(r.Err), l => l.StartsWith("[1/2]", StringComparison.Ordinal));
        Assert.Contains(Screens(r.Err), l => l.StartsWith("[2/2]", StringComparison.Ordinal));
    }

    [Fact]
    public void Bench_piped_prints_result_lines_only()
    {
        var r = Run("bench", "--suite", "layers", "--layers", "dcgan4", "--candidates", "portable", "--threads", "1", "--seconds", "0.01", "--plugin-so", "none");
        Assert.True(r.Code == ExitCodes.Ok, r.ToString());
        Assert.DoesNotContain("\r", r.Err);
        Assert.Contains("[1/1]", r.Err);
    }

    [Theory]
    [InlineData(30)]
    [InlineData(80)]
    [InlineData(200)]
    public void Bar_fits_any_width_and_shortens_long_names_in_the_middle(int width)
    {
        var log = new ProgressLog(TextWriter.Null, "auto", plainPrefix: null);
        string what = "node 3/5: /decoder/very/long/path/of/a/module/that/exporters/write/ConvTranspose_17";
        var bar = log.Bar(new ProgressStep(2, 6, what), width);
        Assert.True(bar.Length < width, bar);
        Assert.StartsWith("auto  [", bar);
        Assert.Contains("3/6", bar);
        if (width >= 80) Assert.Equal(8, bar.Count(c => c == '█')); // 2/6 of 24 cells
        if (width >= 200) Assert.EndsWith(what, bar);
        else if (width >= 80) Assert.Contains("...", bar);
    }
}
