using System.Text.Json;
using OnnxDeconv.GraphRewrite.Timing;

namespace OnnxDeconv.Cli.Bench;

/// <summary>Reads ONNX Runtime's profiler trace (Chrome trace JSON) into per-node kernel times.</summary>
public static class NodeProfile
{
    private const string KernelSuffix = "_kernel_time";

    /// <summary>
    /// Each "cat":"Node" event named "NODE_kernel_time" is one execution of NODE (dur in microseconds, the op type in
    /// args.op_name); returns the median per node, slowest first. The fence_before/after events are bookkeeping, skipped.
    /// </summary>
    public static List<NodeTime> Parse(string traceJson)
    {
        using var doc = JsonDocument.Parse(traceJson);
        var byNode = new Dictionary<string, (string Op, List<double> Ms)>(StringComparer.Ordinal);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node") continue;
            string? name = e.TryGetProperty("name", out var n) ? n.GetString() : null;
            if (name is null || !name.EndsWith(KernelSuffix, StringComparison.Ordinal) || !e.TryGetProperty("dur", out var dur)) continue;
            string node = name[..^KernelSuffix.Length];
            string op = e.TryGetProperty("args", out var args) && args.TryGetProperty("op_name", out var o) ? o.GetString() ?? "?" : "?";
            if (!byNode.TryGetValue(node, out var entry)) byNode[node] = entry = (op, []);
            entry.Ms.Add(dur.GetDouble() / 1000.0);
        }
        return byNode.Select(kv => new NodeTime(kv.Key, kv.Value.Op, RoundRobinTimer.Median(kv.Value.Ms), kv.Value.Ms.Count))
            .OrderByDescending(t => t.MedianMs).ToList();
    }
}
