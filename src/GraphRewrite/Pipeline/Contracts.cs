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
}

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
    /// <summary>Which lowering was used and how (e.g. "polyphase Conv(16ch)+DepthToSpace+Slice").</summary>
    public string? Lowering { get; init; }
    public long MacsBefore { get; init; }
    public long MacsAfter { get; init; }
}

public sealed record OptimizeResult(ModelProto Model, IReadOnlyList<NodeReport> Nodes)
{
    public bool Changed => Nodes.Any(n => n.Rewritten);
}
