using OnnxDeconv.Explain;
using OnnxDeconv.Geometry;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>explain answers how the backend computes it: polyphase phases, GEMM + col2im, zero insertion, the floor, the SVG.</summary>
public class ExplainComputeTests
{
    private static readonly string[] K5S2 = ["explain", "--input", "28", "--kernel", "5", "--stride", "2", "--padding", "0"];

    [Fact]
    public void Explain_prints_each_phase_the_three_methods_their_cost_and_the_floor_within_80_columns()
    {
        var r = Run(K5S2);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("phase 0       30 outputs y[2m] = w4*x[m-2] + w2*x[m-1] + w0*x[m]", r.Out);
        Assert.Contains("phase 1       29 outputs y[2m+1] = w3*x[m-1] + w1*x[m]", r.Out);
        Assert.Contains("MACs 148 (taps x outputs of their phase; I*k = 140 products, the other 8 read the zero border)", r.Flat);
        Assert.Contains("column buffer of k*I = 5*28 = 140 values", r.Flat);
        Assert.Contains("MACs O*k = 59*5 = 295", r.Flat);
        Assert.Contains("floor((28 + 0 - 5) / 2) + 1 = 12 = floor((27 + 0 - 5) / 2) + 1", r.Out);
        Assert.Contains("Without growing the input: yes.", r.Flat);
        Assert.Contains("docs/how-it-works.md", r.Out);
        Assert.All(r.Out.Split('\n'), l => Assert.True(l.TrimEnd('\r').Length <= 80, $"{l.Length}: {l}"));
    }

    [Fact]
    public void Stride_one_has_one_phase_and_nothing_collapses()
    {
        var r = Run("explain", "--input", "4", "--kernel", "3");
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("1 phase (outputs o with o mod 1 = r)", r.Out);
        Assert.DoesNotContain("the floor", r.Out);
        Assert.DoesNotContain("read the zero border", Run("explain", "--input", "4", "--kernel", "1", "--stride", "3").Flat);
    }

    [Fact]
    public void A_phase_no_tap_reaches_says_its_outputs_are_bias_only()
    {
        var r = Run("explain", "--input", "4", "--kernel", "1", "--stride", "3");
        Assert.Contains("3 outputs y[3m+1]: no tap lands here, so they are 0 (bias only)", r.Flat);
        Assert.Contains("phase 0       4 outputs y[3m] = w0*x[m]", r.Out);
    }

    [Fact]
    public void Json_has_the_phases_and_the_layer_costs()
    {
        var j = Run([.. K5S2, "--json"]).Json().GetProperty("results")[0];
        var compute = j.GetProperty("axes")[0].GetProperty("compute");
        Assert.Equal(2, compute.GetProperty("phaseCount").GetInt64());
        Assert.Equal(148, compute.GetProperty("polyphaseMacs").GetInt64());
        var phase1 = compute.GetProperty("phases")[1];
        Assert.Equal([3L, 1L], phase1.GetProperty("taps").EnumerateArray().Select(t => t.GetProperty("tap").GetInt64()));
        Assert.Equal([-1L, 0L], phase1.GetProperty("taps").EnumerateArray().Select(t => t.GetProperty("inputOffset").GetInt64()));
        var costs = j.GetProperty("costs").EnumerateArray().ToDictionary(c => c.GetProperty("method").GetString()!, c => c.GetProperty("macs").GetInt64());
        Assert.Equal(new Dictionary<string, long> { ["polyphase"] = 148, ["GEMM + col2im"] = 140, ["zero insertion"] = 295 }, costs);
        Assert.Equal(["floor((28 + 0 - 5) / 2) + 1 = 12 = floor((27 + 0 - 5) / 2) + 1", "floor((59 + 0 - 5) / 2) + 1 = 28 = floor((60 + 0 - 5) / 2) + 1"],
            j.GetProperty("axes")[0].GetProperty("collapses").EnumerateArray().Select(x => x.GetString()));
    }

    /// <summary>The phases against the definition y[o] = sum of x[i]*w[k] over i*s + k*d == o + pb.</summary>
    [Theory]
    [InlineData(5, 5, 2, 0, 0, 1)]
    [InlineData(7, 4, 3, 1, 2, 1)]
    [InlineData(6, 3, 3, 1, 1, 2)]
    [InlineData(9, 7, 4, 3, 0, 3)]
    [InlineData(3, 2, 5, 0, 1, 1)]
    [InlineData(4, 6, 2, 4, 2, 2)]
    public void Phases_match_the_definition_of_the_transposed_convolution(long input, long kernel, long stride, long pb, long pe, long dilation)
    {
        long output = stride * (input - 1) + dilation * (kernel - 1) + 1 - pb - pe;
        var a = new AxisGeometry(input, kernel, stride, dilation, pb, pe, 0, output);
        var c = ComputeViews.Axis(a);
        long macs = 0;
        for (long o = 0; o < output; o++)
        {
            var expected = new SortedSet<(long, long)>();
            for (long i = 0; i < input; i++)
                for (long k = 0; k < kernel; k++)
                    if (i * stride + k * dilation == o + pb) expected.Add((k, i));
            var phase = c.Phases[(int)(o % stride)];
            var got = new SortedSet<(long, long)>(phase.Taps.Select(t => (t.Tap, o / stride + t.InputOffset)).Where(t => t.Item2 >= 0 && t.Item2 < input));
            Assert.Equal(expected, got);
            macs += phase.TapCount;
        }
        Assert.Equal(macs, (long)c.PolyphaseMacs);
        Assert.Equal(input * kernel, (long)c.GemmMacs);
        Assert.Equal(output * kernel, (long)c.ZeroInsertionMacs);
    }

    [Fact]
    public void Svg_draws_the_input_the_zero_inserted_view_and_the_phases()
    {
        using var tmp = new TempDir();
        var r = Run([.. K5S2, "--svg", tmp.File("axis.svg")]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Contains("wrote " + tmp.File("axis.svg"), r.Out);
        var svg = File.ReadAllText(tmp.File("axis.svg"));
        Assert.StartsWith("<?xml", svg);
        foreach (var text in new[] { "input x", "zero-inserted", "output y", "phase 0", "w4*x[m-2]", "x3" }) Assert.Contains(text, svg);
    }

    [Theory]
    [InlineData("--svg", "axis.png", "the file must end in .svg")]
    [InlineData("--svg", "no/such/folder/axis.svg", "does not exist")]
    [InlineData("--svg-axis", "1", "--svg-axis: 1 is not an axis of the input (0..0)")]
    public void Bad_svg_requests_are_refused_naming_the_option(string option, string value, string message)
    {
        using var tmp = new TempDir();
        string[] svg = option == "--svg-axis" ? ["--svg", tmp.File("a.svg"), option, value] : [option, tmp.File(value)];
        var r = Run([.. K5S2, .. svg]);
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains(message, r.Err);
        Assert.False(File.Exists(tmp.File("a.svg")));
    }
}
