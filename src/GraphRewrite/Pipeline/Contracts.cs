using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Timing;

namespace OnnxDeconv.GraphRewrite.Pipeline;

/// <summary>What a matched node is lowered to.</summary>
public enum Target
{
    /// <summary>Standard ONNX ops only (Conv + DepthToSpace/Reshape-Transpose + Slice): runs on any runtime.</summary>
    Portable,
    /// <summary>The OnnxDeconv custom op (needs the plugin registered in the runtime).</summary>
    Plugin,
    /// <summary>Per node, the fastest measured candidate.</summary>
    Auto,
    /// <summary>Plain ConvTranspose with the derived kernel: Resize/Upsample+Conv pairs are rewritten, ConvTransposes stay as they are.</summary>
    ConvTranspose,
}

/// <summary>
/// One step of a long run: <paramref name="Done"/> of <paramref name="Total"/> steps finished, <paramref name="What"/> is
/// being worked on now (e.g. "node 3/5: /up2/ConvTranspose"). A front end draws a bar or prints a line from it.
/// </summary>
public sealed record ProgressStep(int Done, int Total, string What)
{
    public double Fraction => Total <= 0 ? 1 : Math.Clamp((double)Done / Total, 0, 1);
}

public sealed record OptimizeOptions
{
    public Target Target { get; init; } = Target.Portable;
    /// <summary><see cref="Target.Auto"/> only: never consider the plugin (the model must run without it).</summary>
    public bool PortableOnly { get; init; }
    /// <summary><see cref="Target.Auto"/>: intra-op threads the candidates are timed with (null = all cores).</summary>
    public int? Threads { get; init; }
    /// <summary><see cref="Target.Auto"/>: timing budget per node (and per whole-model comparison).</summary>
    public TimeSpan NodeBudget { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary><see cref="Target.Auto"/>: concrete shapes for graph inputs (as --shape), used where the model's are symbolic.</summary>
    public IReadOnlyDictionary<string, long[]>? Shapes { get; init; }
    /// <summary><see cref="Target.Auto"/>: where decisions are remembered; null = no cache.</summary>
    public DecisionCache? Cache { get; init; }
    /// <summary><see cref="Target.Auto"/>: told what is being timed (timing a large model takes a while), or null.</summary>
    public Action<ProgressStep>? Progress { get; init; }
    /// <summary><see cref="Target.Auto"/>: how candidates are timed; null = in ONNX Runtime, round-robin (<see cref="OrtCandidateTimer"/>).</summary>
    public ICandidateTimer? Timer { get; init; }

    /// <summary>
    /// Called on the working model after each node is rewritten, so a caller can move the new weights out of memory
    /// (see <see cref="IO.SpillFile"/>) and never hold every rewritten weight of a large model at once.
    /// </summary>
    public Action<ModelProto>? AfterNode { get; init; }

    /// <summary>
    /// Where the portable and plugin lowerings write large rearranged weights slice by slice, so a node's lowered weight
    /// is never held whole next to the weight it is computed from (the large-model path); null = in memory.
    /// </summary>
    public IO.SpillFile? Spill { get; init; }

    /// <summary>Names of lowerings (<see cref="Lowering.Lowerings.All"/>) not to use: a site they would lower is reported as left alone.</summary>
    public IReadOnlySet<string> Disabled { get; init; } = new HashSet<string>();

    /// <summary>Where weight values are read from; null = the model's own data (a test counts reads through it).</summary>
    public IO.IWeightSource? Weights { get; init; }
}

/// <summary>One candidate lowering of a node under <see cref="Target.Auto"/>: its median time, or why it was not timed.</summary>
/// <param name="Label">unchanged, portable-combined, portable-perphase or plugin.</param>
/// <param name="MedianMs">Median time of the isolated node in ms; null when not timed.</param>
/// <param name="Note">Why it was not timed (not applicable, output mismatch), or null.</param>
public sealed record CandidateTiming(string Label, double? MedianMs, string? Note = null);

/// <summary>One matched pattern instance and what happened to it.</summary>
public sealed record NodeReport
{
    public required string Node { get; init; }
    public required string Pattern { get; init; }
    /// <summary>The original nodes a multi-node pattern covers (e.g. the Resize and the Conv); null for a single node.</summary>
    public IReadOnlyList<string>? Nodes { get; init; }
    /// <summary>The node this rewrite produced when a later lowering may rewrite it again (that report's <see cref="Node"/>).</summary>
    public string? Produces { get; init; }
    public required bool Rewritten { get; init; }
    /// <summary>Why the node was left alone (null when rewritten).</summary>
    public string? Reason { get; init; }
    /// <summary>
    /// The lowering whose own limit left the site alone (<see cref="Lowering.ISiteLowering.Name"/>); null when the node
    /// is not a site at all (then every target gives the same <see cref="Reason"/>) or when it was rewritten.
    /// </summary>
    public string? RefusedBy { get; init; }
    /// <summary>Which lowering was used and how (e.g. "polyphase Conv(16ch)+DepthToSpace+Slice").</summary>
    public string? Lowering { get; init; }
    public long MacsBefore { get; init; }
    public long MacsAfter { get; init; }
    /// <summary><see cref="Target.Auto"/>: every candidate considered, with its time (null for other targets).</summary>
    public IReadOnlyList<CandidateTiming>? Candidates { get; init; }
    /// <summary><see cref="Target.Auto"/>: the candidate kept (a <see cref="CandidateTiming.Label"/>), null for other targets.</summary>
    public string? Choice { get; init; }
    /// <summary><see cref="Target.Auto"/>: the choice came from the decision cache, nothing was timed.</summary>
    public bool Cached { get; init; }
}

public sealed record OptimizeResult(ModelProto Model, IReadOnlyList<NodeReport> Nodes)
{
    /// <summary>What the caller should tell the user (e.g. an unreadable decision cache, a whole-model fallback).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    /// <summary><see cref="Target.Auto"/>: the original and the result timed side by side (null when not timed).</summary>
    public WholeModelTiming? WholeModel { get; init; }

    public bool Changed => Nodes.Any(n => n.Rewritten);
}

/// <summary>The whole-model guarantee of <see cref="Target.Auto"/>: original vs result, median ms, and what was reverted.</summary>
/// <param name="Reverted">Node choices undone because the result was slower than the original (in the order undone).</param>
/// <param name="ReturnedOriginal">Even with every choice undone the result was slower: the original model was returned.</param>
/// <param name="Cached">The last comparison came from the decision cache (the same two models were timed before).</param>
public sealed record WholeModelTiming(double OriginalMs, double ResultMs, IReadOnlyList<string> Reverted, bool ReturnedOriginal, bool Cached = false);
