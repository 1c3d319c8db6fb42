using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Verification;
using static OnnxDeconv.GraphRewrite.Tests.ResizeConv.ResizeConvModels;

namespace OnnxDeconv.GraphRewrite.Tests.ResizeConv;

/// <summary>
/// Resize(nearest ×s) + Conv with dilation d: the taps of output o read x[floor((o - pb + d*k)/s)], a condition on
/// o mod s alone, so it is a ConvTranspose with kernel d(K-1)+s; d &lt;= s is rewritten, d > s refused (zero taps, more MACs).
/// Checked through ONNX Runtime (ORT_DISABLE_ALL), |a-b| &lt;= 1e-5 + 1e-4*|b| (float32).
/// </summary>
public class ResizeConvDilationTests
{
    public const int Cases = 120;

    public static IEnumerable<object[]> CaseIndices() => Enumerable.Range(0, Cases).Select(i => new object[] { i });

    /// <summary>Case <paramref name="i"/>: every form and exact mode, dilation in [1, s] per axis with at least one axis > 1.</summary>
    public static ResizeConvCase Generate(int i)
    {
        var rng = new Random(104_729 + i);
        var forms = Enum.GetValues<UpsampleForm>();
        var form = forms[i % forms.Length];
        bool legacy = form is UpsampleForm.Resize10 or UpsampleForm.Upsample9 or UpsampleForm.Upsample7;
        var modes = legacy ? ["asymmetric", "floor"] : ExactModes[rng.Next(ExactModes.Length)];
        int r = rng.Next(5) == 0 ? 1 : 2;
        bool onlyTwo = modes[0] == "asymmetric" && modes[1] == "round_prefer_floor";
        long[] scales = [.. Enumerable.Range(0, r).Select(_ => onlyTwo ? 2L : rng.Next(2, 5))];
        long[] kernel = [.. Enumerable.Range(0, r).Select(_ => (long)rng.Next(2, 6))];
        long[] dil = [.. scales.Select(s => (long)rng.Next(1, (int)s + 1))];
        if (dil.All(v => v == 1)) dil[rng.Next(r)] = scales.Max() == scales[0] ? scales[0] : 2;
        for (int a = 0; a < r; a++) dil[a] = Math.Min(dil[a], scales[a]);
        if (dil.All(v => v == 1)) dil[0] = 2; // scales are >= 2, so 2 <= s
        long[] span = [.. kernel.Select((k, a) => dil[a] * (k - 1) + 1)];
        long[] spatial = [.. Enumerable.Range(0, r).Select(a => Math.Max((long)rng.Next(2, r == 1 ? 8 : 5), (span[a] + scales[a] - 1) / scales[a]))];
        long[] pads = [.. Enumerable.Range(0, 2 * r).Select(a => (long)rng.Next(0, (int)span[a % r]))];
        long group, cinG, coutG;
        switch (rng.Next(3))
        {
            case 0: group = rng.Next(2, 4); cinG = 1; coutG = rng.Next(1, 3); break;
            default: group = 1; cinG = rng.Next(1, 4); coutG = rng.Next(1, 4); break;
        }
        // ONNX Runtime runs no dilated SAME Conv (the rewrite refuses those, see below): VALID or explicit pads only.
        string? autoPad = rng.Next(8) == 0 ? "VALID" : null;
        return new ResizeConvCase(form, 1, spatial, scales, kernel, pads, cinG, coutG, group, rng.Next(2) == 0,
            modes[0], modes[1], autoPad, Seed: i, Dilations: dil);
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void RandomDilatedResizeConv_RewritesForEveryTarget_AndMatchesOriginalInOnnxRuntime(int i)
    {
        var c = Generate(i);
        var model = Build(c);
        foreach (var target in AllTargets)
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var pair = Assert.Single(result.Nodes, n => n.Pattern is "Resize+Conv" or "Upsample+Conv");
            Assert.True(pair.Rewritten, $"{c} [{target}]: {pair.Reason}");
            Assert.Equal(0, PairsLeft(result.Model));
            var report = Verify(model, result.Model, seed: i);
            Assert.True(report.Passed, $"{c} [{target}]: {Describe(report)}");
        }
    }

    [Fact]
    public void DilationSweep_CoversEveryFormModeAndDilationUpToScale()
    {
        var all = Enumerable.Range(0, Cases).Select(Generate).ToList();
        Assert.True(all.Count >= 100);
        Assert.All(all, c => Assert.True(c.Dilations!.Zip(c.Scales).All(p => p.First >= 1 && p.First <= p.Second) && c.Dilations!.Any(v => v > 1), c.ToString()));
        foreach (var form in Enum.GetValues<UpsampleForm>()) Assert.Contains(all, c => c.Form == form);
        foreach (var m in ExactModes) Assert.Contains(all, c => c.Ctm == m[0] && c.Nearest == m[1]);
        Assert.Contains(all, c => c.Dilations!.Zip(c.Scales).Any(p => p.First == p.Second && p.First > 2));
        Assert.Contains(all, c => c.Dilations!.Zip(c.Scales).Any(p => p.First > 1 && p.First < p.Second));
        Assert.Contains(all, c => c.AutoPad is null && !c.Pads.Take(c.Kernel.Length).SequenceEqual(c.Pads.Skip(c.Kernel.Length)));
        Assert.Contains(all, c => c.AutoPad == "VALID");
        Assert.Contains(all, c => c.Spatial.Length == 1);
        Assert.Contains(all, c => c.Group > 1);
    }

    [Fact]
    public void DeriveWeights_K3S3D2_SumsOverlappingWindowsOfWidthS()
    {
        // Tap k covers k' in [d(K-1-k), d(K-1-k)+s-1] = w2 -> [0,2], w1 -> [2,4], w0 -> [4,6]; kernel d(K-1)+s = 7.
        float w0 = 0.5f, w1 = -2f, w2 = 3f;
        var derived = ResizeConvToConvTranspose.DeriveWeights([w0, w1, w2], [1, 1, 3], 1, [3], [2]);
        Assert.Equal([w2, w2, w1 + w2, w1, w0 + w1, w0, w0], derived);
    }

    [Fact]
    public void DilationEqualToScale_MacsUnchanged_ResizeGone()
    {
        // d = s: every output reads K distinct inputs before and after; the win is the upsampled tensor not existing.
        // Pads summing to d(K-1) per axis keep the output at s*I, so both sides count the same s*I*K taps per axis.
        var c = new ResizeConvCase(UpsampleForm.Resize19, 1, [4, 4], [2, 2], [3, 3], [2, 1, 2, 3], 2, 3, 1, true, "asymmetric", "floor", Dilations: [2, 2]);
        var model = Build(c);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.ConvTranspose });
        var pair = Assert.Single(result.Nodes);
        Assert.True(pair.Rewritten, pair.Reason);
        Assert.Equal(pair.MacsBefore, pair.MacsAfter);
        Assert.DoesNotContain(result.Model.Graph.Node, n => n.OpType == Ops.Resize.OpType);
        var report = Verify(model, result.Model);
        Assert.True(report.Passed, Describe(report));
    }

    [Theory]
    [InlineData("SAME_UPPER")]
    [InlineData("SAME_LOWER")]
    public void DilatedSameConv_LeftByteIdentical_BecauseOnnxRuntimeCannotRunIt(string autoPad)
    {
        var model = Build(new ResizeConvCase(UpsampleForm.Resize19, 1, [4, 4], [2, 2], [3, 3], [0, 0, 0, 0], 2, 2, 1, false,
            "asymmetric", "floor", AutoPad: autoPad, Dilations: [2, 2]));
        var bytes = ModelIO.Serialize(model);
        var result = Optimizer.Run(model, new OptimizeOptions { Target = Target.Portable });
        var pair = Assert.Single(result.Nodes);
        Assert.False(pair.Rewritten);
        Assert.Contains($"auto_pad {autoPad} with dilations", pair.Reason);
        Assert.Equal(bytes, ModelIO.Serialize(result.Model));
        Assert.Throws<VerificationInputException>(() => Verify(model, model));
    }

    [Theory]
    [InlineData(2L, 3L)]
    [InlineData(3L, 4L)]
    public void DilationAboveScale_LeftByteIdentical_WithReason(long scale, long dilation)
    {
        var model = Build(new ResizeConvCase(UpsampleForm.Resize19, 1, [5, 5], [scale, scale], [3, 3], [1, 1, 1, 1], 2, 2, 1, true,
            "asymmetric", "floor", Dilations: [1, dilation]));
        var bytes = ModelIO.Serialize(model);
        foreach (var target in AllTargets)
        {
            var result = Optimizer.Run(model, new OptimizeOptions { Target = target });
            var pair = Assert.Single(result.Nodes);
            Assert.False(pair.Rewritten);
            Assert.Contains($"dilation {dilation} exceeds the upsample scale {scale}", pair.Reason);
            Assert.Equal(bytes, ModelIO.Serialize(result.Model));
        }
    }
}
