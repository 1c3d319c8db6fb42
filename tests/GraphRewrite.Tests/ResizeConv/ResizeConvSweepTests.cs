using OnnxDeconv.GraphRewrite.Pipeline;
using static OnnxDeconv.GraphRewrite.Tests.ResizeConv.ResizeConvModels;

namespace OnnxDeconv.GraphRewrite.Tests.ResizeConv;

/// <summary>
/// Seeded random Resize/Upsample(nearest) + Conv configurations, rewritten for every target and checked against the
/// original through ONNX Runtime (ORT_DISABLE_ALL), |a-b| &lt;= 1e-5 + 1e-4*|b|. Tensors are tiny so the sweep stays fast.
/// </summary>
public class ResizeConvSweepTests
{
    public const int Cases = 210;

    public static IEnumerable<object[]> CaseIndices() => Enumerable.Range(0, Cases).Select(i => new object[] { i });

    /// <summary>Case <paramref name="i"/> of the sweep; the forms rotate so every opset variant gets 30 cases.</summary>
    public static ResizeConvCase Generate(int i)
    {
        var rng = new Random(7919 + i);
        var forms = Enum.GetValues<UpsampleForm>();
        var form = forms[i % forms.Length];
        bool legacy = form is UpsampleForm.Resize10 or UpsampleForm.Upsample9 or UpsampleForm.Upsample7;
        var modes = legacy ? ["asymmetric", "floor"] : ExactModes[rng.Next(ExactModes.Length)];
        int roll = rng.Next(10);
        int r = roll < 7 ? 2 : roll < 9 ? 1 : 3;
        bool onlyTwo = modes[0] == "asymmetric" && modes[1] == "round_prefer_floor";
        long[] scales = [.. Enumerable.Range(0, r).Select(_ => onlyTwo || r == 3 ? 2L : rng.Next(2, 5))];
        long[] kernel = [.. Enumerable.Range(0, r).Select(_ => (long)rng.Next(1, r == 3 ? 4 : 6))];
        // At least ceil(K/s) input pixels, so even a VALID Conv has a non-empty output.
        long[] spatial = [.. Enumerable.Range(0, r).Select(a => Math.Max((long)(r == 1 ? rng.Next(3, 9) : r == 3 ? 2 : rng.Next(2, 6)),
            (kernel[a] + scales[a] - 1) / scales[a]))];
        long[] pads = [.. Enumerable.Range(0, 2 * r).Select(a => (long)rng.Next(0, (int)kernel[a % r]))];
        long group, cinG, coutG;
        switch (rng.Next(4))
        {
            case 0: group = 2; cinG = rng.Next(1, 3); coutG = rng.Next(1, 3); break;
            case 1: group = rng.Next(2, 5); cinG = 1; coutG = rng.Next(1, 3); break; // depthwise (and multiplier 2)
            default: group = 1; cinG = rng.Next(1, 4); coutG = rng.Next(1, 4); break;
        }
        string? autoPad = rng.Next(10) switch { 0 => "SAME_UPPER", 1 => "SAME_LOWER", 2 => "VALID", _ => null };
        return new ResizeConvCase(form, rng.Next(5) == 0 ? 2 : 1, spatial, scales, kernel, pads, cinG, coutG, group,
            rng.Next(2) == 0, modes[0], modes[1], autoPad, Seed: i);
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void RandomResizeConv_RewritesForEveryTarget_AndMatchesOriginalInOnnxRuntime(int i)
    {
        var c = Generate(i);
        var model = Build(c);
        Assert.Equal(1, PairsLeft(model));
        foreach (var target in AllTargets)
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var pair = Assert.Single(result.Nodes, n => n.Pattern is "Resize+Conv" or "Upsample+Conv");
            Assert.True(pair.Rewritten, $"{c} [{target}]: {pair.Reason}");
            Assert.True(pair.MacsAfter > 0 && pair.MacsBefore > 0, $"{c} [{target}]: MACs {pair.MacsBefore} -> {pair.MacsAfter}");
            Assert.Equal(0, PairsLeft(result.Model));
            Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.Resize.OpType || n.OpType == Ops.Upsample.OpType);
            var report = Verify(model, result.Model, seed: i);
            Assert.True(report.Passed, $"{c} [{target}]: {Describe(report)}");
        }
    }

    [Fact]
    public void Sweep_CoversEveryFormModeGroupingAndBiasChoice()
    {
        // The sweep is only as good as its spread: check the generator really hits every variant the brief lists.
        var all = Enumerable.Range(0, Cases).Select(Generate).ToList();
        Assert.True(all.Count >= 200);
        foreach (var form in Enum.GetValues<UpsampleForm>()) Assert.Contains(all, c => c.Form == form);
        foreach (var m in ExactModes) Assert.Contains(all, c => c.Ctm == m[0] && c.Nearest == m[1] && c.Form == UpsampleForm.Resize19);
        Assert.Contains(all, c => c.Group > 1 && c.CinPerGroup == 1);
        Assert.Contains(all, c => c.Group == 1);
        Assert.Contains(all, c => c.Bias);
        Assert.Contains(all, c => !c.Bias);
        Assert.Contains(all, c => c.Scales.Distinct().Count() > 1);
        Assert.Contains(all, c => c.Scales.Contains(4));
        Assert.Contains(all, c => c.Kernel.Contains(5));
        Assert.Contains(all, c => c.AutoPad is null && c.Pads.Take(c.Kernel.Length).SequenceEqual(c.Pads.Skip(c.Kernel.Length)) == false);
        foreach (var ap in new[] { "SAME_UPPER", "SAME_LOWER", "VALID" }) Assert.Contains(all, c => c.AutoPad == ap);
        Assert.Contains(all, c => c.Spatial.Length == 1);
        Assert.Contains(all, c => c.Spatial.Length == 3);
    }
}
