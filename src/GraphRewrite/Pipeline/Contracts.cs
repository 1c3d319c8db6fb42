using OnnxDeconv.GraphRewrite.Onnx;

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

public sealed record OptimizeOptions
{
    public Target Target { get; init; } = Target.Portable;

    /// <summary>
    /// Called on the working model after each node is rewritten, so a caller can move the new weights out of memory
    /// (see <see cref="IO.SpillFile"/>) and never hold every rewritten weight of a large model at once.
    /// </summary>
    public Action<ModelProto>? AfterNode { get; init; }
}

/// <summary>One matched pattern instance and what happened to it.</summary>
public sealed record NodeReport
{
    public required string Node { get; init; }
    public required string Pattern { get; init; }
    public required bool Rewritten { get; init; }
    /// <summary>Why the node was left alone (null when rewritten).</summary>
    public string? Reason { get; init; }
    /// <summary>Which lowering was used and how (e.g. "polyphase Conv(16ch)+DepthToSpace+Slice").</summary>
    public string? Lowering { get; init; }
    public long MacsBefore { get; init; }
    public long MacsAfter { get; init; }
}

public sealed record OptimizeResult(ModelProto Model, IReadOnlyList<NodeReport> Nodes)
{
    public bool Changed => Nodes.Any(n => n.Rewritten);
}
