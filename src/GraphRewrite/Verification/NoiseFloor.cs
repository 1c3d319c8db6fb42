using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>How one output that missed the tolerance compares with the original model's own noise floor.</summary>
public sealed record OutputNoiseFloor(string Name, double RewriteMaxAbs, double FloorMaxAbs, long FloorMismatches, bool Within);

/// <summary>
/// The second look a whole-model comparison gets when some outputs miss the tolerance although nothing is structurally
/// wrong (same shapes and types, no NaN). Normalization after a rewritten node (InstanceNormalization dividing by a
/// small spread, a softmax, a deep stack) amplifies the few-ulp summation-order differences every exact rewrite has
/// into errors over any fixed tolerance. Whether such errors are noise is decided by the model itself:
/// <list type="number">
/// <item>the floor: the original is run again on the same inputs, each float element moved by one ulp in a seeded random
/// direction (rounding noise at the inputs, which the model amplifies the way it amplifies the rewrite's);</item>
/// <item>the rewrite passes when every rewritten node matches its original within the tolerance in isolation
/// (<see cref="NodeVerifier"/>, authoritative: it compares the nodes themselves, before any amplification) and every
/// output's max abs error is at most <see cref="Factor"/> times the floor's max abs deviation.</item>
/// </list>
/// A wrong rewrite (a misplaced tap, a lost bias, a wrong crop) fails both: its node is off by far more than the
/// tolerance, and its outputs by orders of magnitude more than the floor. A model that does not amplify (floor under the
/// tolerance) gets no relief: the floor bound is then tighter than the tolerance itself.
/// </summary>
public static class NoiseFloor
{
    /// <summary>
    /// How many floors a correct rewrite may use. A one-ulp input perturbation and the rounding of a reordered sum of K
    /// products both move an output by a random walk of ~sqrt(K) ulps; the rewrite's walk runs over the rewritten
    /// layer's own K, which can be a few times the first layer's, so the floor is scaled by 8. Measured in
    /// NoiseFloorTests: a correct rewrite 1.0 floor, one lowered weight 0.002 off 294 floors.
    /// </summary>
    public const double Factor = 8;

    /// <summary>The rule as printed beside a verification that used it.</summary>
    public static string Rule =>
        $"outputs beyond the tolerance are accepted when every rewritten node is within it in isolation and each output's max abs error <= {Factor:0}x the original's own deviation with every float input moved by one ulp";

    /// <summary>Outcome: per failing output, the floor; the node-by-node report it relied on; whether the rewrite passes.</summary>
    public sealed record Judgement(bool Passed, IReadOnlyList<OutputNoiseFloor> Outputs, VerificationReport? Nodes, string Summary);

    /// <summary>True when <paramref name="outputs"/> missed the tolerance only numerically (a floor can say something about them).</summary>
    public static bool Applies(IReadOnlyList<OutputComparison> outputs) =>
        outputs.Any(o => !o.Passed) &&
        outputs.All(o => o.Passed || (o.Problem is null && o.WorstIndex is not null && double.IsFinite(o.MaxAbsError)));

    /// <summary>Inputs with every finite non-zero float element moved one ulp up or down (seeded, so a verification repeats exactly).</summary>
    public static IReadOnlyList<TensorValue> Perturb(IReadOnlyList<TensorValue> inputs, int seed)
    {
        var rng = new Random(unchecked(seed * 7919 + 104729));
        return inputs.Select(t => t.Data switch
        {
            float[] f => t with { Data = f.Select(v => v == 0 || !float.IsFinite(v) ? v : rng.Next(2) == 0 ? MathF.BitIncrement(v) : MathF.BitDecrement(v)).ToArray() },
            double[] d => t with { Data = d.Select(v => v == 0 || !double.IsFinite(v) ? v : rng.Next(2) == 0 ? Math.BitIncrement(v) : Math.BitDecrement(v)).ToArray() },
            _ => t,
        }).ToList();
    }

    /// <summary>
    /// Judges the failing outputs of a whole-model verification: runs <paramref name="original"/> on perturbed inputs,
    /// then the rewrite node by node. <paramref name="expected"/> are the original's outputs on <paramref name="inputs"/>.
    /// </summary>
    public static Judgement Judge(ModelSource original, ModelSource rewritten, OrtRunOptions ortOptions,
        IReadOnlyList<TensorValue> inputs, IReadOnlyList<TensorValue> expected, IReadOnlyList<OutputComparison> comparisons,
        VerifyOptions options)
    {
        var failing = comparisons.Where(c => !c.Passed).ToList();
        if (!inputs.Any(i => i.Data is float[] or double[]))
            return new Judgement(false, [], null, "no float input to measure the model's noise floor with");

        IReadOnlyList<TensorValue> moved;
        using (var runner = original.CreateRunner(ortOptions))
            moved = runner.Run(Perturb(inputs, options.Seed), failing.Select(c => c.Name).ToList());
        var floors = failing.Select(c =>
        {
            var floor = OutputComparer.Compare(c.Name, expected.First(t => t.Name == c.Name), moved.First(t => t.Name == c.Name), options.Tolerance);
            double floorMax = double.IsFinite(floor.MaxAbsError) ? floor.MaxAbsError : 0;
            return new OutputNoiseFloor(c.Name, c.MaxAbsError, floorMax, floor.Mismatches, c.MaxAbsError <= Factor * floorMax);
        }).ToList();

        VerificationReport? nodes = null;
        string? nodeProblem = null;
        var origModel = Load(original);
        var rewModel = Load(rewritten);
        if (origModel is null || rewModel is null) nodeProblem = "the models are too large to isolate nodes from in memory";
        else
        {
            try { nodes = NodeVerifier.Verify(origModel, rewModel, options with { InputsDir = null, NoiseFloor = false }); }
            catch (Exception e) when (e is VerificationInputException or ModelFormatException or OnnxRuntimeException)
            { nodeProblem = $"the rewritten nodes could not be checked in isolation: {e.Message}"; }
        }

        bool withinFloor = floors.All(f => f.Within);
        bool nodesPass = nodes is { Passed: true } && nodes.Outputs.Count > 0;
        string summary =
            nodeProblem is not null ? $"not accepted: {nodeProblem}"
            : nodes!.Outputs.Count == 0 ? "not accepted: no rewritten node to check in isolation, so the difference is not the rewrite's rounding"
            : !nodes.Passed ? $"not accepted: {nodes.Outputs.Count(o => !o.Passed)} of {nodes.Outputs.Count} rewritten node(s) miss the tolerance in isolation"
            : !withinFloor ? $"not accepted: {string.Join("; ", floors.Where(f => !f.Within).Select(f => $"'{f.Name}' max abs {f.RewriteMaxAbs:G3} > {Factor:0} x floor {f.FloorMaxAbs:G3}"))}"
            : $"accepted as the model's own noise: all {nodes.Outputs.Count} rewritten node(s) within the tolerance in isolation; "
              + string.Join("; ", floors.Select(f => $"'{f.Name}' max abs {f.RewriteMaxAbs:G3} <= {Factor:0} x floor {f.FloorMaxAbs:G3} (the original alone misses the tolerance at {f.FloorMismatches} element(s) when its inputs move one ulp)"));
        return new Judgement(nodesPass && withinFloor, floors, nodes, summary);
    }

    private static ModelProto? Load(ModelSource source)
    {
        if (source.Model is { } model)
        {
            // Node isolation reads external weights where ONNX Runtime found them for this source.
            if (source.ExternalDataFolder is { } folder && ModelIO.SourceDirectory(model) is null) ModelIO.SetSourceDirectory(model, folder);
            return model;
        }
        return source.Bytes is not null ? ModelProto.Parser.ParseFrom(source.Bytes)
            : source.Path is not null && new FileInfo(source.Path).Length < int.MaxValue ? ModelIO.Load(source.Path) : null;
    }
}
