using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>
/// Verifies a rewrite one rewritten value at a time, for models too big to hold twice in ONNX Runtime. A value is
/// "rewritten" when both models compute it but with different nodes (rewrites keep the output name of what they
/// replace). For each such value Y, the nodes between Y and the values both models share (graph inputs and outputs of
/// unchanged nodes) are cut out of each model with only the weights they read (external ones referenced in place, not
/// read in; real shapes from the declared or inferred shapes), and the two small models are compared by
/// <see cref="Verifier"/> on seeded random inputs, one session after the other: one node's weight in memory at a time.
/// </summary>
public static class NodeVerifier
{
    /// <summary>ONNX Runtime session config key that turns off kernels' weight pre-packing.</summary>
    public const string DisablePrepackingKey = "session.disable_prepacking";

    /// <summary>One report: an output row per rewritten value; fails when any does (or cannot be isolated).</summary>
    public static VerificationReport Verify(ModelProto original, ModelProto rewritten, VerifyOptions options)
    {
        if (options.InputsDir is not null)
            throw new VerificationInputException("--inputs gives the whole model's inputs; verifying node by node uses random inputs (use --verify model with --inputs)");
        // Pre-packing makes a kernel keep its own re-laid-out copy of a weight (ConvTranspose transposes its filter)
        // while the weight is still loaded: two copies of the largest tensor. Verification only needs the values,
        // so the sessions compute from the weights as loaded (measured on a 600 MB model whose largest tensor is
        // 200 MiB: optimize's peak fell from 484 to 278 MiB).
        var configure = options.Configure;
        options = options with { Configure = so => { so.AddSessionConfigEntry(DisablePrepackingKey, "1"); configure?.Invoke(so); } };
        var oIndex = new GraphIndex(original);
        var rIndex = new GraphIndex(rewritten);
        var shared = SharedValues(original.Graph, oIndex).Intersect(SharedValues(rewritten.Graph, rIndex)).ToHashSet(StringComparer.Ordinal);
        // Rewritten: computed by a different node, or by the same node from a different constant (a rewrite may only
        // change weights).
        bool Changed(string v)
        {
            if (oIndex.Producer(v) is not { } on || rIndex.Producer(v) is not { } rn) return false;
            if (!on.Equals(rn)) return true;
            foreach (var i in on.Input)
            {
                if (i.Length == 0) continue;
                var (ot, rt) = (oIndex.Initializer(i), rIndex.Initializer(i));
                if (ot is not null || rt is not null)
                {
                    if (ot is null || rt is null || !ot.Equals(rt)) return true;
                }
                else if (!shared.Contains(i) && (oIndex.Producer(i) is not { } op || rIndex.Producer(i) is not { } rp || !op.Equals(rp)))
                    return true;
            }
            return false;
        }
        var targets = original.Graph.Node.SelectMany(n => n.Output)
            .Where(v => v.Length > 0 && shared.Contains(v) && Changed(v))
            .Distinct(StringComparer.Ordinal)
            .ToList();
        // Shapes by the one policy (docs/shapes.md): the graph inputs' from --shape / declared / batch 1, the cut-out
        // models' inputs inferred from them, and probed in one run when inference cannot reach them. The cut-out
        // models get concrete inputs, so --shape (which names the whole model's inputs) is not passed on to them.
        Shapes.ShapeSpecs.CheckNames(original, options.Shapes);
        var inputShapes = Shapes.SpecialisedSites.ResolvedInputs(original, options.Shapes);
        var hints = ShapeHints.Infer(original, inputShapes);
        var unknown = targets.SelectMany(y => Walk(oIndex, y, shared).Boundary).Distinct(StringComparer.Ordinal)
            .Where(b => !(oIndex.Shape(b) is { } s && s.All(d => d >= 0)) && !hints.ContainsKey(b)).ToList();
        if (unknown.Count > 0)
        {
            try { foreach (var (k, v) in ShapeProbe.Probe(original, unknown, options.Shapes, ModelIO.DataDirectory(original, new TensorProto())).Shapes) hints[k] = v; }
            catch (ShapeProbeException e) { throw new VerificationInputException($"node-by-node verification needs the shapes of {string.Join(", ", unknown.Take(3).Select(u => $"'{u}'"))}{(unknown.Count > 3 ? ", ..." : "")}: {e.Message}", e); }
        }
        options = options with { Shapes = new Dictionary<string, long[]>(StringComparer.Ordinal) };

        var outputs = new List<OutputComparison>();
        var inputs = new List<TensorValue>();
        string? error = null;
        foreach (var y in targets)
        {
            var (o, oFolder) = Extract(original, oIndex, y, shared, hints);
            ModelProto r;
            string? rFolder;
            try { (r, rFolder) = Extract(rewritten, rIndex, y, shared, hints); }
            catch (VerificationInputException e)
            {
                error ??= $"rewritten value '{y}': {e.Message}";
                outputs.Add(new OutputComparison { Name = y, Passed = false });
                continue;
            }
            var report = Verifier.Verify(ModelSource.FromModel(o, $"original nodes computing '{y}'", oFolder),
                ModelSource.FromModel(r, $"rewritten nodes computing '{y}'", rFolder), options);
            outputs.AddRange(report.Outputs);
            inputs.AddRange(report.Inputs.Where(i => !inputs.Any(j => j.Name == i.Name)));
            if (report.Error is not null) error ??= report.Error;
            // The last node's inline weights and session buffers are garbage now: free them before the next node
            // loads its own, so the peak is one node's weights rather than however many the GC lets pile up.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
        return new VerificationReport
        {
            Passed = error is null && outputs.All(c => c.Passed),
            Outputs = outputs,
            InputSource = $"random, seed {options.Seed}, {targets.Count} rewritten value(s) verified in isolation",
            Inputs = inputs,
            Tolerance = options.Tolerance,
            // A rewrite that changed the model but no value both models compute cannot be checked this way.
            Error = error ?? (targets.Count == 0 && !original.Graph.Equals(rewritten.Graph)
                ? "no value computed by both models changed: the rewrite cannot be verified node by node (use --verify model)" : null),
        };
    }

    /// <summary>Graph inputs and outputs of non-Constant nodes: values a cut-out model can take as an input.</summary>
    private static IEnumerable<string> SharedValues(GraphProto g, GraphIndex index)
    {
        foreach (var i in g.Input) if (index.Initializer(i.Name) is null) yield return i.Name;
        foreach (var n in g.Node)
        {
            if (n.OpType == Ops.Constant.OpType && Ops.IsDefaultDomain(n.Domain)) continue;
            foreach (var o in n.Output) if (o.Length > 0) yield return o;
        }
    }

    /// <summary>
    /// The nodes computing <paramref name="y"/> from shared values, with the initializers they read. External ones in
    /// the folder holding most of their bytes stay external (ONNX Runtime reads them from there, no managed copy);
    /// the others are read inline. Returns that folder (null when everything is inline).
    /// </summary>
    private static (ModelProto Model, string? Folder) Extract(ModelProto model, GraphIndex index, string y, HashSet<string> shared, Dictionary<string, long[]> hints)
    {
        var (nodes, boundary, initializers) = Walk(index, y, shared);

        var sub = new ModelProto { IrVersion = model.IrVersion, Graph = new GraphProto { Name = $"isolated_{y}" } };
        sub.OpsetImport.AddRange(model.OpsetImport.Select(o => o.Clone()));
        sub.Functions.AddRange(model.Functions.Select(f => f.Clone()));
        sub.Graph.Node.AddRange(model.Graph.Node.Where(nodes.Contains).Select(n => n.Clone()));
        var tensors = initializers.Select(n => index.Initializer(n)!).ToList();
        string? folder = tensors.Where(ExternalData.IsExternal)
            .GroupBy(t => ModelIO.DataDirectory(model, t) ?? "")
            .Where(g => g.Key.Length > 0)
            .OrderByDescending(g => g.Sum(t => ExternalData.ExpectedByteLength(t) ?? 0))
            .Select(g => g.Key)
            .FirstOrDefault();
        foreach (var t in tensors)
        {
            if (ExternalData.IsExternal(t) && folder is not null && ModelIO.DataDirectory(model, t) == folder)
            {
                ExternalData.Locate(t, folder); // checked, not read: ONNX Runtime reads it from the file
                sub.Graph.Initializer.Add(t.Clone());
            }
            else sub.Graph.Initializer.Add(ModelIO.InlineCopy(model, t));
        }
        foreach (var b in boundary.OrderBy(b => b, StringComparer.Ordinal))
        {
            var declared = index.ValueInfo(b);
            long[]? dims = index.Shape(b) is { } s && s.All(d => d >= 0) ? s : hints.GetValueOrDefault(b);
            if (declared is not null && (dims is null || declared.Type?.TensorType?.Shape is null)) sub.Graph.Input.Add(declared.Clone());
            else
            {
                var type = declared?.Type?.TensorType?.ElemType is int et and not 0 ? (DataType)et : DataType.Float;
                if (dims is null)
                    throw new VerificationInputException($"the shape of '{b}' (an input of the nodes computing '{y}') is unknown; declare it in value_info or use --verify model");
                sub.Graph.Input.Add(ModelBuilder.ValueInfo(b, type, dims));
            }
        }
        var yType = index.ValueInfo(y)?.Type?.TensorType?.ElemType is int yt and not 0 ? (DataType)yt : DataType.Float;
        sub.Graph.Output.Add(ModelBuilder.ValueInfo(y, yType, null));
        return (sub, folder);
    }

    /// <summary>The nodes computing <paramref name="y"/> from shared values, the shared values they read, and their initializers.</summary>
    private static (HashSet<NodeProto> Nodes, List<string> Boundary, List<string> Initializers) Walk(GraphIndex index, string y, HashSet<string> shared)
    {
        var nodes = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var boundary = new List<string>();
        var initializers = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push(y);
        while (pending.Count > 0)
        {
            var v = pending.Pop();
            if (v.Length == 0 || !seen.Add(v)) continue;
            if (index.Initializer(v) is not null) { initializers.Add(v); continue; }
            if (v != y && shared.Contains(v)) { boundary.Add(v); continue; }
            var producer = index.Producer(v)
                           ?? throw new VerificationInputException($"'{v}' is neither computed in the main graph nor an input of it");
            if (nodes.Add(producer))
            {
                foreach (var i in producer.Input) pending.Push(i);
                foreach (var sg in Topology.Subgraphs(producer))
                    foreach (var r in Topology.OuterReads(sg)) pending.Push(r);
            }
        }

        return (nodes, boundary, initializers);
    }
}
