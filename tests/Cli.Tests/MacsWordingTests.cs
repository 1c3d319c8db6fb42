using OnnxDeconv.Cli.Verification;

namespace OnnxDeconv.Cli.Tests;

/// <summary>The MACs column says which way the count moved: a rewrite can add MACs (zero taps of a combined Conv).</summary>
public class MacsWordingTests
{
    [Theory]
    [InlineData(900, 400, "2.25x fewer")]
    [InlineData(400, 625, "1.56x more")] // was "0.64x fewer"
    [InlineData(500, 500, "same")]
    [InlineData(0, 500, "")]             // unknown before: nothing claimed
    [InlineData(500, 0, "")]
    public void Reduction_names_the_direction_of_the_change(long before, long after, string expected) =>
        Assert.Equal(expected, OptimizeReport.Reduction(before, after));
}
