using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>Mistyped options and commands: the error names what the user typed and suggests what they meant (exit 3).</summary>
public class OptionErrorTests
{
    private static string Demo(string name) => Path.Combine(OnnxDeconv.TestSupport.RepoPaths.DemoModels, name);

    [Fact]
    public void A_misspelled_option_is_named_with_the_option_it_resembles()
    {
        var r = Run("explain", "--input", "28", "--kernal", "5");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("unknown option '--kernal' (did you mean --kernel?)", r.Err);
        Assert.DoesNotContain("'5'", r.Err); // the value after it is not what went wrong

        var ok = Run("explain", "--input", "28", "--kernel", "5");
        Assert.True(ok.Code == 0, ok.ToString());
        Assert.Equal("", ok.Err);
    }

    [Fact]
    public void A_trailing_unknown_option_is_not_read_as_a_model_path()
    {
        var r = Run("explain", "--input", "28", "--kernel", "5", "--bogus");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("onnx-deconv explain: unknown option '--bogus'; see 'onnx-deconv explain --help'", r.Err);
        Assert.DoesNotContain("MODEL", r.Err);

        var info = Run("info", Demo("dcgan_generator.onnx"), "--bogus");
        Assert.Equal(ExitCodes.InvalidInput, info.Code);
        Assert.Contains("unknown option '--bogus'", info.Err);
    }

    [Fact]
    public void Option_values_that_look_like_options_are_not_flagged()
    {
        // Negative numbers and lists are values; --opt=value and --opt:value name the option before the separator.
        var r = Run("explain", "--input=28", "--kernel:5", "--padding", "-1");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("--padding: padding is -1; must be >= 0", r.Err);
        Assert.DoesNotContain("unknown option", r.Err);
        Assert.Equal(0, Run("explain", "--input=28", "--kernel:5", "--help").Code);
    }

    [Fact]
    public void A_misspelled_command_is_suggested_and_the_commands_listed()
    {
        var r = Run("optimise", "m.onnx");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("unknown command 'optimise' (did you mean optimize?); commands: explain, info, verify, optimize, test, bench", r.Err);

        var far = Run("frobnicate");
        Assert.Contains("unknown command 'frobnicate'; commands:", far.Err);
    }

    [Fact]
    public void A_bad_target_names_the_option_and_lists_every_target_incl_convtranspose()
    {
        var r = Run("optimize", Demo("dcgan_generator.onnx"), "-o", "x.onnx", "--target", "foo");
        Assert.Equal(ExitCodes.InvalidInput, r.Code);
        Assert.Contains("--target: Argument 'foo' not recognized. Must be one of: 'auto', 'portable', 'plugin', 'convtranspose'", r.Err);

        var bench = Run("bench", Demo("dcgan_generator.onnx"), "--targets", "foo");
        Assert.Equal(ExitCodes.InvalidInput, bench.Code);
        Assert.Contains("known: portable, plugin, convtranspose, auto", bench.Err);
    }

    [Theory]
    [InlineData("--kernal", "--kernel", 1)]
    [InlineData("--strdie", "--stride", 1)] // a transposition is one edit
    [InlineData("--input", "--input", 0)]
    public void Edit_distance_counts_typos(string a, string b, int expected) => Assert.Equal(expected, OptionCheck.Distance(a, b));

    [Fact]
    public void No_suggestion_when_nothing_is_close()
    {
        Assert.Equal("--kernel", OptionCheck.Closest("--kernal", ["--input", "--kernel", "--stride"]));
        Assert.Null(OptionCheck.Closest("--zzzzzz", ["--input", "--kernel", "--stride"]));
    }
}
