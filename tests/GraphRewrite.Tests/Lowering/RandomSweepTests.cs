using OnnxDeconv.GraphRewrite.Lowering;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using static OnnxDeconv.GraphRewrite.Tests.Lowering.PortableTestKit;

namespace OnnxDeconv.GraphRewrite.Tests.Lowering;

public class RandomSweepTests
{
    /// <summary>
    /// Number of seeded configurations. CI default 600; the full sweep runs with e.g.
    /// <c>ONNXDECONV_SWEEP=5000 dotnet test tests/GraphRewrite.Tests --filter RandomSweep</c>.
    /// </summary>
    private static int SweepCount =>
        int.TryParse(Environment.GetEnvironmentVariable("ONNXDECONV_SWEEP"), out var n) && n > 0 ? n : 600;

    [Fact]
    public void RandomSweep_RewrittenModels_MatchOrtConvTranspose()
    {
        var failures = new List<string>();
        int perPhase = 0, combined = 0, dynamic = 0;
        for (int seed = 0; seed < SweepCount; seed++)
        {
            var c = RandomConvTransposeConfigs.Generate(seed);
            var rng = new Random(seed * 7919 + 1);
            var w = RandomFloats(rng, c.WShape.Aggregate(1L, (p, v) => p * v));
            float[]? b = c.Bias ? RandomFloats(rng, c.WShape[1] * c.Attrs.Group) : null;
            long[]? declared = c.DynamicSpatial || c.DynamicBatch
                ? [c.DynamicBatch ? -1 : c.XShape[0], c.XShape[1], .. c.XShape.Skip(2).Select(v => c.DynamicSpatial ? -1L : v)]
                : null;
            var model = SingleNode(c.Attrs, c.XShape, c.WShape, w, b, c.Opset, declared);
            // Exercise both phase forms: Auto for most seeds, each forced form on a share of them.
            var form = (seed % 5) switch { 3 => PhaseForm.Combined, 4 => PhaseForm.PerPhase, _ => PhaseForm.Auto };
            try
            {
                var result = Optimizer.Run(model, new OptimizeOptions(), form);
                var report = Assert.Single(result.Nodes);
                if (!report.Rewritten) { failures.Add($"{c}: not rewritten: {report.Reason}"); continue; }
                AssertNoConvTranspose(result.Model, c.ToString());
                if (report.Lowering!.Contains("phase Convs")) perPhase++; else combined++;
                if (c.DynamicSpatial) dynamic++;
                var x = TensorValue.Float("X", c.XShape, RandomFloats(rng, c.XShape.Aggregate(1L, (p, v) => p * v)));
                AssertSameOutputs(model, result.Model, [x], $"{c} [{report.Lowering}]");
                if (c.DynamicSpatial || c.DynamicBatch)
                {
                    // Symbolic dims: the same rewritten model must also hold at another (larger, so still valid) size.
                    long grow = seed % 3 + 1;
                    long[] other = [c.DynamicBatch ? c.XShape[0] + 1 : c.XShape[0], c.XShape[1], .. c.XShape.Skip(2).Select(v => c.DynamicSpatial ? v + grow : v)];
                    var x2 = TensorValue.Float("X", other, RandomFloats(rng, other.Aggregate(1L, (p, v) => p * v)));
                    AssertSameOutputs(model, result.Model, [x2], $"{c} at [{string.Join(",", other)}] [{report.Lowering}]");
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failures.Add($"{c}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
            if (failures.Count >= 10) break;
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // The sweep must really cover both forms and dynamic sizes, or it proves less than it claims.
        Assert.True(perPhase > SweepCount / 20 && combined > SweepCount / 4 && dynamic > SweepCount / 20,
            $"coverage: per-phase {perPhase}, combined {combined}, dynamic {dynamic} of {SweepCount}");
    }
}
