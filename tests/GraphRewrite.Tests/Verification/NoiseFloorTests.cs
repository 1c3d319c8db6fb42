using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.GraphRewrite.Tests.Verification;

/// <summary>
/// Whole-model verification after a normalization that amplifies rounding (as in style-transfer decoders:
/// ConvTranspose -> InstanceNormalization). Tolerance |a-b| <= 1e-5 + 1e-4*|b| (the float32 default); outputs beyond it
/// are judged against the original's own noise floor (<see cref="NoiseFloor"/>).
/// </summary>
public class NoiseFloorTests
{
    private static ModelProto AmplifyingDecoder() => AmplifyingModels.Decoder();

    private static ModelProto Portable(ModelProto model)
    {
        var r = Optimizer.Run(model, new OptimizeOptions { Target = Target.Portable });
        Assert.True(r.Nodes.Single().Rewritten, r.Nodes.Single().Reason);
        return r.Model;
    }

    [Fact]
    public void A_correct_rewrite_before_an_amplifying_normalization_passes_with_default_settings()
    {
        var model = AmplifyingDecoder();
        var rewritten = Portable(model);

        var report = Verifier.Verify(ModelSource.FromModel(model), ModelSource.FromModel(rewritten));

        // The plain tolerance alone rejects this correct rewrite (else the test shows nothing)...
        var y = report.Outputs.Single();
        Assert.False(y.Passed);
        Assert.True(y.Mismatches > 0);
        // ...the floor accepts it: nodes exact in isolation, output error within 8 floors.
        Assert.True(report.Passed, report.NoiseFloor?.Summary);
        Assert.NotNull(report.NoiseFloor);
        Assert.True(report.NoiseFloor!.Nodes!.Passed);
        var f = report.NoiseFloor.Outputs.Single();
        Assert.True(f.FloorMaxAbs > 0 && f.RewriteMaxAbs <= NoiseFloor.Factor * f.FloorMaxAbs, report.NoiseFloor.Summary);
        Assert.StartsWith("accepted as the model's own noise", report.NoiseFloor.Summary);
        Assert.True(f.FloorMismatches > 0, "the original alone misses the tolerance when its inputs move one ulp");
    }

    [Fact]
    public void A_rewrite_with_one_weight_off_by_a_tenth_still_fails_although_its_node_passes_the_relative_tolerance()
    {
        // At |y| ~ 50 the node tolerance allows 5e-3; a 0.002 change of one lowered weight hides in it, but after the
        // normalization it is hundreds of floors away.
        var model = AmplifyingDecoder();
        var wrong = Portable(model);
        var w = wrong.Graph.Initializer.Single(t => t.Name == wrong.Graph.Node.First(n => n.OpType == Ops.Conv.OpType).Input[1]);
        var values = Tensors.ToFloats(w);
        values[values.Length / 2] += 0.002f;
        wrong.Graph.Initializer[wrong.Graph.Initializer.IndexOf(w)] = Tensors.FromFloats(w.Name, w.Dims.ToArray(), values);

        var report = Verifier.Verify(ModelSource.FromModel(model), ModelSource.FromModel(wrong));

        Assert.False(report.Passed);
        Assert.NotNull(report.NoiseFloor);
        Assert.Contains("> 8 x floor", report.NoiseFloor!.Summary);
        var f = report.NoiseFloor.Outputs.Single();
        Assert.True(f.RewriteMaxAbs > 100 * f.FloorMaxAbs, report.NoiseFloor.Summary);
    }

    [Fact]
    public void A_rewrite_with_a_lost_bias_fails_on_its_node_in_isolation()
    {
        var model = AmplifyingDecoder();
        var wrong = Portable(model);
        var conv = wrong.Graph.Node.First(n => n.OpType == Ops.Conv.OpType);
        var bias = wrong.Graph.Initializer.Single(t => t.Name == conv.Input[2]);
        var values = Tensors.ToFloats(bias);
        values[0] += 0.1f; // a per-channel constant: InstanceNormalization removes it, the node check does not
        wrong.Graph.Initializer[wrong.Graph.Initializer.IndexOf(bias)] = Tensors.FromFloats(bias.Name, bias.Dims.ToArray(), values);

        var report = Verifier.Verify(ModelSource.FromModel(model), ModelSource.FromModel(wrong));

        // InstanceNormalization removes most of a per-channel shift from Y, and what it leaves is within the floor
        // bound or not; the authoritative node check rejects the rewrite either way.
        Assert.False(report.Passed);
        Assert.NotNull(report.NoiseFloor);
        Assert.Contains("1 of 1 rewritten node(s) miss the tolerance in isolation", report.NoiseFloor!.Summary);
        Assert.False(report.NoiseFloor.Nodes!.Passed);
    }

    [Fact]
    public void Perturbing_inputs_moves_every_nonzero_float_by_exactly_one_ulp_and_repeats_for_a_seed()
    {
        var x = new TensorValue("X", TensorProto.Types.DataType.Float, [4], new[] { 1f, 0f, -3.5f, float.PositiveInfinity });
        var a = NoiseFloor.Perturb([x], 3).Single().AsFloats();
        Assert.Equal(a, NoiseFloor.Perturb([x], 3).Single().AsFloats());
        Assert.Equal(0f, a[1]);
        Assert.Equal(float.PositiveInfinity, a[3]);
        foreach (int i in new[] { 0, 2 })
            Assert.True(a[i] == MathF.BitIncrement(x.AsFloats()[i]) || a[i] == MathF.BitDecrement(x.AsFloats()[i]));
    }
}
