using System.Globalization;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using Spectre.Console;

namespace OnnxDeconv.Cli.Verification;

/// <summary>The before/after tables of <c>optimize</c>: op counts by type, what happened to each matched node.</summary>
internal static class OptimizeReport
{
    /// <summary>Node count per op type (custom domains spelled "domain:OpType"), sorted by name.</summary>
    public static SortedDictionary<string, int> OpCounts(ModelProto model)
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var n in model.Graph.Node)
        {
            var key = Ops.IsDefaultDomain(n.Domain) ? n.OpType : $"{n.Domain}:{n.OpType}";
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }
        return counts;
    }

    public static TextTable OpTable(IReadOnlyDictionary<string, int> before, IReadOnlyDictionary<string, int> after)
    {
        var table = new TextTable("Op", "Before", "After", "Change") { Border = TableBorder.Ascii };
        foreach (var op in before.Keys.Union(after.Keys).OrderBy(k => k, StringComparer.Ordinal))
        {
            int b = before.GetValueOrDefault(op), a = after.GetValueOrDefault(op);
            table.AddRow(VerifyCli.Row(op, Int(b), Int(a), a == b ? "" : (a - b).ToString("+0;-0", CultureInfo.InvariantCulture)));
        }
        table.AddRow(VerifyCli.Row("total", Int(before.Values.Sum()), Int(after.Values.Sum()), ""));
        return table;
    }

    public static TextTable NodeTable(IReadOnlyList<NodeReport> nodes)
    {
        var table = new TextTable("Node", "Pattern", "Result", "Lowering / reason", "MACs before", "MACs after", "Reduction") { Border = TableBorder.Ascii }.Names("Node");
        foreach (var n in nodes)
            table.AddRow(VerifyCli.Row(n.Node, n.Pattern, n.Rewritten ? "rewritten" : "skipped",
                (n.Rewritten ? n.Lowering : n.Reason) ?? "", Macs(n.MacsBefore), n.Rewritten ? Macs(n.MacsAfter) : "",
                n.Rewritten ? Reduction(n.MacsBefore, n.MacsAfter) : ""));
        return table;
    }

    /// <summary>Reports of the upsample+Conv patterns (Resize/Upsample+Conv, zero insertion+Conv, with their fusions).</summary>
    public static IReadOnlyList<NodeReport> UpsamplePatterns(IReadOnlyList<NodeReport> nodes) =>
        [.. nodes.Where(n => UpsamplePrefixes.Any(p => n.Pattern.StartsWith(p, StringComparison.Ordinal)))];

    private static readonly string[] UpsamplePrefixes = ["Resize+Conv", "Upsample+Conv", "ZeroInsertion+Conv"];

    /// <summary>
    /// MACs after the whole chain: a Resize+Conv pair first becomes a ConvTranspose, which the target's lowering then
    /// rewrites again (its report names the produced node); the final form is what runs.
    /// </summary>
    public static long FinalMacs(NodeReport pattern, IReadOnlyList<NodeReport> all) =>
        pattern.Produces is { } p && all.FirstOrDefault(r => r.Node == p && r.Rewritten) is { MacsAfter: > 0 } next ? next.MacsAfter : pattern.MacsAfter;

    /// <summary>One row per upsample+Conv pattern: its name, the nodes it covered, MACs before -> after (final form) and the reduction.</summary>
    public static TextTable PatternTable(IReadOnlyList<NodeReport> patterns, IReadOnlyList<NodeReport> all)
    {
        var table = new TextTable("Pattern", "Nodes", "MACs before -> after", "Reduction") { Border = TableBorder.Ascii, Title = $"Upsample+Conv patterns ({patterns.Count})" }.Names("Nodes");
        foreach (var n in patterns)
            table.AddRow(VerifyCli.Row(n.Pattern, string.Join("\n", n.Nodes ?? [n.Node]),
                n.Rewritten ? $"{Macs(n.MacsBefore)} -> {Macs(FinalMacs(n, all))}" : $"skipped: {n.Reason}",
                n.Rewritten ? Reduction(n.MacsBefore, FinalMacs(n, all)) : ""));
        return table;
    }

    /// <summary>The same rows for --json: the reduction as a number (null when MACs are unknown).</summary>
    public static IEnumerable<object> PatternJson(IReadOnlyList<NodeReport> patterns, IReadOnlyList<NodeReport> all) => patterns.Select(n => new
    {
        pattern = n.Pattern,
        nodes = n.Nodes ?? [n.Node],
        rewritten = n.Rewritten,
        reason = n.Reason,
        macsBefore = n.MacsBefore > 0 ? n.MacsBefore : (long?)null,
        macsAfter = n.Rewritten && FinalMacs(n, all) > 0 ? FinalMacs(n, all) : (long?)null,
        reduction = n.Rewritten && n.MacsBefore > 0 && FinalMacs(n, all) > 0 ? Math.Round(n.MacsBefore / (double)FinalMacs(n, all), 4) : (double?)null,
    });
    /// <summary>--target auto: each node's candidates with their median time, the ratio to the unchanged node, and the choice.</summary>
    public static TextTable CandidateTable(IReadOnlyList<NodeReport> nodes)
    {
        var table = new TextTable("Node", "Candidate", "Median ms", "vs unchanged", "Chosen") { Border = TableBorder.Ascii }.Names("Node");
        foreach (var n in nodes.Where(n => n.Candidates is { Count: > 0 }))
        {
            double? baseline = n.Candidates!.FirstOrDefault(c => c.Label == "unchanged")?.MedianMs;
            bool first = true;
            foreach (var c in n.Candidates!)
            {
                string ms = c.MedianMs is { } m ? m.ToString("0.000", CultureInfo.InvariantCulture) : c.Note ?? "-";
                string ratio = c.MedianMs is { } v && baseline is { } b && v > 0 ? (b / v).ToString("0.00", CultureInfo.InvariantCulture) + "x" : "";
                string chosen = c.Label == n.Choice ? (n.Cached ? "yes (cached)" : "yes") : "";
                table.AddRow(VerifyCli.Row(first ? n.Node : "", c.Label, ms, ratio, chosen));
                first = false;
            }
        }
        return table;
    }

    public static string WholeModelLine(WholeModelTiming w)
    {
        string r(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        string speed = w.ResultMs > 0 ? (w.OriginalMs / w.ResultMs).ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-";
        string tail = w.ReturnedOriginal ? $"; slower, every choice undone{(w.Reverted.Count > 0 ? $" ({string.Join(", ", w.Reverted)})" : "")}: the original model was kept"
            : w.Reverted.Count > 0 ? $"; reverted to unchanged (whole model was slower): {string.Join(", ", w.Reverted)}" : "";
        return $"whole model (median{(w.Cached ? ", cached" : "")}): original {r(w.OriginalMs)} ms, optimized {r(w.ResultMs)} ms ({speed}){tail}";
    }

    /// <summary>"2.25x fewer", "1.56x more" or "same" (a rewrite can add MACs, e.g. zero taps of a combined Conv); "" when unknown.</summary>
    public static string Reduction(long before, long after) =>
        before <= 0 || after <= 0 ? ""
        : before == after ? "same"
        : before > after ? (before / (double)after).ToString("0.00", CultureInfo.InvariantCulture) + "x fewer"
        : (after / (double)before).ToString("0.00", CultureInfo.InvariantCulture) + "x more";

    public static string Macs(long v) => v <= 0 ? "-" : v switch
    {
        >= 1_000_000_000 => (v / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + "G",
        >= 1_000_000 => (v / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (v / 1e3).ToString("0.00", CultureInfo.InvariantCulture) + "k",
        _ => v.ToString(CultureInfo.InvariantCulture),
    };

    private static string Int(int v) => v.ToString(CultureInfo.InvariantCulture);
}
