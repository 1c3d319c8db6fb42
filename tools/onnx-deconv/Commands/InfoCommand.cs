using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using Spectre.Console;
using static OnnxDeconv.Cli.Commands.CliSupport;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// <c>onnx-deconv info MODEL</c>: model summary, op histogram, every ConvTranspose (resolved attributes, shapes, MACs),
/// every Resize/Upsample→Conv pair and every zero-insertion→Conv pattern (shapes, MACs before/after the rewrite).
/// Shapes come from one ONNX Runtime run on zero inputs (<see cref="ShapeProbe"/>).
/// </summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "ONNX model file (or a backend-test folder holding model.onnx)" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (System.Text.Json)" };
        var shape = new Option<string[]>("--shape") { Description = "Concrete shape of a graph input with symbolic dims: name=1,3,64,64 (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("info", "Summarize a model: producer, opsets, op histogram, every ConvTranspose, every Resize/Upsample->Conv pair and every zero-insertion->Conv pattern with shapes and MACs.");
        cmd.Arguments.Add(model);
        cmd.Options.Add(json);
        cmd.Options.Add(shape);
        cmd.SetAction(pr => Guard(pr.InvocationConfiguration.Error, () =>
            Run(pr.GetValue(model)!, ParseShapes(pr.GetValue(shape)), pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error)));
        return cmd;
    }

    private sealed record ConvTransposeInfo(NodeProto Node, ConvTransposeAttributes? Attrs, ConvTransposeGeometry? Geometry,
        long[]? InputShape, long[]? WeightShape, long[]? OutputShape, string? Problem, bool Malformed);

    /// <summary>What the Resize+Conv rewrite would do with a pair: MACs before/after (0 unknown) or why it would not.</summary>
    private sealed record PairRewrite(long MacsBefore, long MacsAfter, string? Refusal);

    /// <summary>A Conv reading a zero-stuffed tensor: the match (null with the reason when refused) and its MACs.</summary>
    private sealed record ZeroInsertionInfo(NodeProto Conv, ZeroInsertionMatch? Match, long MacsBefore, long MacsAfter, string Note);

    private static int Run(string path, IReadOnlyDictionary<string, long[]> overrides, bool json, TextWriter stdout, TextWriter stderr)
    {
        var model = LoadModel(path);
        var index = new GraphIndex(model);
        var cts = index.Graph.Node.Where(ConvTransposeNode.Is).ToList();
        var resizes = index.Graph.Node.Where(ResizeConvPair.IsResize).ToList();
        var wanted = cts.SelectMany(n => n.Input.Take(2).Concat(n.Output.Take(1)))
            .Concat(resizes.SelectMany(n => n.Input.Take(1).Concat(n.Output.Take(1))))
            .Concat(resizes.SelectMany(n => n.Output.Take(1)).SelectMany(o => index.Consumers(o)).Where(c => c.OpType == Ops.Conv.OpType).SelectMany(c => c.Output.Take(1)))
            .Concat(index.Graph.Node.Where(n => ZeroInsertion.LooksLikeZeroInsertion(index, n)).SelectMany(n => n.Output.Take(1).Concat(ZeroInsertion.ChainValues(index, n))))
            .Concat(index.Graph.Output.Select(o => o.Name));
        var shapes = ModelShapes.Resolve(model, path, overrides, wanted);

        var infos = cts.Select(n => Analyse(n, shapes)).ToList();
        var problems = new List<string>();
        IReadOnlyList<ResizeConvPair> pairs = [];
        try { pairs = ResizeConvPair.FindAll(index, shapes.Of); }
        catch (AttributeException e) { problems.Add($"Resize/Upsample -> Conv pairs not analysed: {e.Message}"); }
        var pairRewrites = pairs.Select(p => RewriteOf(index, p, shapes)).ToList();
        var zeroInsertions = index.Graph.Node.Where(n => ZeroInsertion.LooksLikeZeroInsertion(index, n)).Select(ZeroInsertionOf(index, shapes)).ToList();
        foreach (var i in infos.Where(i => i.Malformed))
        {
            problems.Add($"{Attributes.Describe(i.Node)}: {i.Problem}");
            stderr.WriteLine($"warning: {path}: node '{Attributes.Describe(i.Node)}': {i.Problem}");
        }

        var histogram = index.Graph.Node
            .GroupBy(n => Ops.IsDefaultDomain(n.Domain) ? n.OpType : $"{n.Domain}.{n.OpType}")
            .Select(g => (Op: g.Key, Count: g.Count()))
            .OrderByDescending(t => t.Count).ThenBy(t => t.Op, StringComparer.Ordinal).ToList();

        if (json) WriteJson(stdout, ToJson(path, model, index, histogram, shapes, infos, pairs, pairRewrites, zeroInsertions, problems));
        else RenderText(stdout, path, model, index, histogram, shapes, infos, pairs, pairRewrites, zeroInsertions, problems);
        return ExitCodes.Ok;
    }

    private static PairRewrite RewriteOf(GraphIndex index, ResizeConvPair pair, ModelShapes shapes)
    {
        var hints = new Dictionary<string, long[]>(StringComparer.Ordinal);
        if (shapes.Of(pair.Resize.Input[0]) is { } x && x.All(d => d > 0)) hints[pair.Resize.Input[0]] = x;
        return ResizeConvToConvTranspose.TryMatch(index, pair, out var m, out var reason, hints) && m is not null
            ? new PairRewrite(m.MacsBefore, m.MacsAfter, null)
            : new PairRewrite(0, 0, reason ?? "not rewritable");
    }

    private static Func<NodeProto, ZeroInsertionInfo> ZeroInsertionOf(GraphIndex index, ModelShapes shapes) => conv =>
    {
        if (!ZeroInsertion.TryMatch(index, conv, out var m, out var reason, shapes.Of) || m is null)
            return new ZeroInsertionInfo(conv, null, 0, 0, reason ?? "not a zero insertion this rewrite understands");
        var derived = ZeroInsertConvToConvTranspose.Derive(m);
        return new ZeroInsertionInfo(conv, m, m.ConvMacs, ZeroInsertConvToConvTranspose.ConvTransposeMacs(m, derived), derived.Note);
    };

    /// <summary>Shape of the tensor that gets zero-stuffed: probed, else as declared when fully static.</summary>
    private static long[]? StuffedInputShape(ZeroInsertionMatch? m, ModelShapes shapes) =>
        m is null ? null : shapes.Of(m.Input) ?? (m.InputShape.All(d => d > 0) ? m.InputShape : null);

    private static string MacsText(long before, long after) =>
        before > 0 && after > 0
            ? $"{before.ToString("N0", CultureInfo.InvariantCulture)} -> {after.ToString("N0", CultureInfo.InvariantCulture)} "
              + $"({Verification.OptimizeReport.Reduction(before, after)})"
            : "?";

    private static ConvTransposeInfo Analyse(NodeProto node, ModelShapes shapes)
    {
        ConvTransposeAttributes attrs;
        try { attrs = ConvTransposeNode.ReadAttributes(node); }
        catch (AttributeException e) { return new(node, null, null, null, null, null, e.Message, true); }
        var x = node.Input.Count > 0 ? shapes.Of(node.Input[0]) : null;
        var w = node.Input.Count > 1 ? shapes.Of(node.Input[1]) : null;
        var y = node.Output.Count > 0 ? shapes.Of(node.Output[0]) : null;
        if (node.Input.Count < 2)
            return new(node, attrs, null, x, w, y, $"has {node.Input.Count} input(s); ConvTranspose needs X and W", true);
        if (x is null || w is null)
            return new(node, attrs, null, x, w, y, $"shape of {(x is null ? "X" : "W")} unknown", false);
        try
        {
            var g = ConvTransposeGeometry.Resolve(attrs, x, w);
            string? mismatch = y is not null && !y.SequenceEqual(g.OutputShape)
                ? $"ONNX Runtime produced {Shape(y)}, geometry says {Shape(g.OutputShape)}" : null;
            return new(node, attrs, g, x, w, y ?? g.OutputShape, mismatch, false);
        }
        catch (GeometryException e) { return new(node, attrs, null, x, w, y, $"attribute '{e.Attribute}': {e.Message}", true); }
    }

    private static string Producer(ModelProto m) =>
        string.IsNullOrEmpty(m.ProducerName) ? "(not set)" : $"{m.ProducerName} {m.ProducerVersion}".Trim();

    private static IEnumerable<(string Domain, long Version)> Opsets(ModelProto m) =>
        m.OpsetImport.Select(o => (Ops.IsDefaultDomain(o.Domain) ? "ai.onnx" : o.Domain, o.Version));

    private static string ValueText(ValueInfoProto v, ModelShapes shapes) =>
        $"{v.Name} {ShapeProbe.DeclaredShape(v)}" +
        (shapes.Of(v.Name) is { } s ? $" -> {Shape(s)}" : "");

    private static void RenderText(TextWriter stdout, string path, ModelProto model, GraphIndex index, List<(string Op, int Count)> histogram,
        ModelShapes shapes, List<ConvTransposeInfo> infos, IReadOnlyList<ResizeConvPair> pairs, List<PairRewrite> pairRewrites,
        List<ZeroInsertionInfo> zeroInsertions, List<string> problems)
    {
        var c = CliSupport.Console(stdout);
        var initializers = index.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var summary = new TextTable("Model", path) { ShowHeaders = false, Title = $"Model {path}" };
        Row(summary, "file", path);
        Row(summary, "producer", Producer(model));
        Row(summary, "IR version", model.IrVersion.ToString(CultureInfo.InvariantCulture));
        Row(summary, "opsets", string.Join(", ", Opsets(model).Select(o => $"{o.Domain} {o.Version}")));
        Row(summary, "graph", $"{index.Graph.Name}: {index.Graph.Node.Count} nodes, {index.Graph.Initializer.Count} initializers");
        Row(summary, "inputs", string.Join("\n", index.Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(i => ValueText(i, shapes))));
        Row(summary, "outputs", string.Join("\n", index.Graph.Output.Select(o => ValueText(o, shapes))));
        Row(summary, "shapes", shapes.Source + (shapes.Notes.Count > 0 ? ": " + string.Join("; ", shapes.Notes) : ""));
        c.Write(summary);

        var ops = NewTable("op", "count");
        ops.Title = "Op histogram";
        foreach (var (op, count) in histogram) Row(ops, op, count.ToString(CultureInfo.InvariantCulture));
        c.Write(ops);

        int pluginNodes = index.Graph.Node.Count(n => n.Domain == OnnxDeconv.Plugin.TransposedConvSchema.Domain);
        if (pluginNodes > 0)
            c.WriteLine($"{pluginNodes} {OnnxDeconv.Plugin.TransposedConvSchema.Domain} node(s): the model runs only with the OnnxDeconv plugin.");
        if (infos.Count == 0) c.WriteLine("No ConvTranspose nodes.");
        else
        {
            var t = NewTable("node", "kernel", "strides", "dilations", "pads", "output_padding", "group", "auto_pad", "output_shape", "X, W -> Y", "MACs", "note").Names("node");
            t.Title = $"ConvTranspose nodes ({infos.Count})";
            foreach (var i in infos)
            {
                var g = i.Geometry;
                var a = i.Attrs;
                Row(t, string.IsNullOrEmpty(i.Node.Name) ? Attributes.Describe(i.Node) : i.Node.Name,
                    g is not null ? Dims(g.Axes.Select(x => x.Kernel)) : Written(a, a?.KernelShape),
                    g is not null ? Dims(g.Axes.Select(x => x.Stride)) : Written(a, a?.Strides),
                    g is not null ? Dims(g.Axes.Select(x => x.Dilation)) : Written(a, a?.Dilations),
                    g is not null ? Dims(g.Pads) : Written(a, a?.Pads),
                    g is not null ? Dims(g.Axes.Select(x => x.OutputPadding)) : Written(a, a?.OutputPadding),
                    (g?.Group ?? a?.Group)?.ToString(CultureInfo.InvariantCulture) ?? "?",
                    a is null ? "?" : ConvTransposeAttributes.AutoPadName(a.AutoPad),
                    a?.OutputShape is { } os ? Dims(os) : "-",
                    $"{Shape(i.InputShape)}, {Shape(i.WeightShape)} -> {Shape(i.OutputShape)}",
                    g is not null ? g.UsefulMacs.ToString("N0", CultureInfo.InvariantCulture) : "?",
                    Note(i));
            }
            c.Write(t);
        }

        if (pairs.Count == 0) c.WriteLine("No Resize/Upsample -> Conv pairs.");
        else
        {
            var t = NewTable("resize", "mode", "coord. transform", "nearest_mode", "scales", "conv", "kernel", "strides", "pads", "group", "X -> Y", "integer nearest repetition").Names("resize", "conv");
            t.Title = $"Resize/Upsample -> Conv pairs ({pairs.Count})";
            foreach (var p in pairs)
                Row(t, Attributes.Describe(p.Resize), p.Mode, p.CoordinateTransformationMode, p.NearestMode,
                    p.Scales is { } s ? "[" + string.Join(", ", s.Select(v => v.ToString(CultureInfo.InvariantCulture))) + "]" : p.Sizes is { } z ? $"sizes {Dims(z)}" : "not constant",
                    Attributes.Describe(p.Conv), Dims(p.ConvKernel), Dims(p.ConvStrides), p.ConvAutoPad is { } ap && ap != "NOTSET" ? ap : Dims(p.ConvPads),
                    p.ConvGroup.ToString(CultureInfo.InvariantCulture),
                    $"{Shape(shapes.Of(p.Resize.Input[0]))} -> {Shape(shapes.Of(p.Resize.Output[0]))} -> {Shape(shapes.Of(p.Conv.Output[0]))}",
                    (p.IsIntegerNearestRepetition ? "yes: " : "no: ") + p.RepetitionNote + (p.OtherConsumers > 0 ? $" ({p.OtherConsumers} other reader(s) of the resized tensor)" : ""));
            c.Write(t);
        }

        if (zeroInsertions.Count == 0) c.WriteLine("No zero-insertion -> Conv patterns.");
        else
        {
            var t = NewTable("conv", "style", "strides", "pad begin", "pad end", "kernel", "group", "X -> Y", "rewritable").Names("conv");
            t.Title = $"Zero-insertion -> Conv patterns ({zeroInsertions.Count})";
            foreach (var z in zeroInsertions)
            {
                var m = z.Match;
                var x = StuffedInputShape(m, shapes);
                Row(t, Attributes.Describe(z.Conv), m?.Style ?? "?", m is null ? "?" : Dims(m.Strides), m is null ? "?" : Dims(m.PadBegin),
                    m is null ? "?" : Dims(m.PadEnd), m is null ? "?" : Dims(m.Kernel), m?.Group.ToString(CultureInfo.InvariantCulture) ?? "?",
                    $"{Shape(x)} -> {Shape(shapes.Of(z.Conv.Output[0]))}", (m is null ? "no: " : "yes: ") + z.Note);
            }
            c.Write(t);
        }

        if (pairs.Count + zeroInsertions.Count > 0)
        {
            // One narrow table for what optimize would gain: the detail tables above are too wide to hold it.
            var t = NewTable("pattern", "conv", "rewritable", "MACs before -> after").Names("conv");
            t.Title = "Upsample -> Conv rewrites";
            foreach (var (p, rw) in pairs.Zip(pairRewrites))
                Row(t, ResizeConvToConvTranspose.PatternName(p), Attributes.Describe(p.Conv), rw.Refusal is null ? "yes" : $"no: {rw.Refusal}",
                    rw.Refusal is null ? MacsText(rw.MacsBefore, rw.MacsAfter) : "");
            foreach (var z in zeroInsertions)
                Row(t, ZeroInsertConvToConvTranspose.PatternName, Attributes.Describe(z.Conv), z.Match is not null ? "yes" : $"no: {z.Note}",
                    z.Match is not null ? MacsText(z.MacsBefore, z.MacsAfter) : "");
            c.Write(t);
        }
        foreach (var p in problems) c.WriteLine($"problem: {p}");
    }

    /// <summary>An attribute as written when the geometry could not be resolved: "-" absent, "?" unreadable.</summary>
    private static string Written(ConvTransposeAttributes? attrs, long[]? value) =>
        attrs is null ? "?" : value is null ? "-" : Dims(value);

    private static string Note(ConvTransposeInfo i)
    {
        var notes = new List<string>();
        if (i.Problem is not null) notes.Add(i.Problem);
        if (i.Geometry is { OrtRejectsOutputPadding: true }) notes.Add("ONNX Runtime refuses output_padding >= stride");
        if (i.Geometry is { } g && g.Axes.All(a => a.PadBegin == a.PadEnd && a.PadBegin >= 0)
            && i.Attrs is { AutoPad: AutoPad.NotSet, OutputShape: null })
            notes.Add($"PyTorch padding={Dims(g.Axes.Select(a => a.PadBegin))}");
        return string.Join("; ", notes);
    }

    private static JsonObject ToJson(string path, ModelProto model, GraphIndex index, List<(string Op, int Count)> histogram,
        ModelShapes shapes, List<ConvTransposeInfo> infos, IReadOnlyList<ResizeConvPair> pairs, List<PairRewrite> pairRewrites,
        List<ZeroInsertionInfo> zeroInsertions, List<string> problems)
    {
        var initializers = index.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        JsonObject Value(ValueInfoProto v) => new()
        {
            ["name"] = v.Name,
            ["declared"] = ShapeProbe.DeclaredShape(v),
            ["shape"] = Json(shapes.Of(v.Name)),
        };
        var cts = new JsonArray();
        foreach (var i in infos)
        {
            var a = i.Attrs;
            var g = i.Geometry;
            cts.Add(new JsonObject
            {
                ["name"] = i.Node.Name,
                ["describe"] = Attributes.Describe(i.Node),
                ["attributes"] = a is null ? null : new JsonObject
                {
                    ["kernel_shape"] = Json(a.KernelShape),
                    ["strides"] = Json(a.Strides),
                    ["dilations"] = Json(a.Dilations),
                    ["pads"] = Json(a.Pads),
                    ["output_padding"] = Json(a.OutputPadding),
                    ["output_shape"] = Json(a.OutputShape),
                    ["auto_pad"] = ConvTransposeAttributes.AutoPadName(a.AutoPad),
                    ["group"] = a.Group,
                },
                ["resolved"] = g is null ? null : new JsonObject
                {
                    ["kernel"] = Json(g.Axes.Select(x => x.Kernel)),
                    ["strides"] = Json(g.Axes.Select(x => x.Stride)),
                    ["dilations"] = Json(g.Axes.Select(x => x.Dilation)),
                    ["pads"] = Json(g.Pads),
                    ["output_padding"] = Json(g.Axes.Select(x => x.OutputPadding)),
                    ["group"] = g.Group,
                    ["ortAccepts"] = !g.OrtRejectsOutputPadding,
                },
                ["inputShape"] = Json(i.InputShape),
                ["weightShape"] = Json(i.WeightShape),
                ["outputShape"] = Json(i.OutputShape),
                ["macs"] = g?.UsefulMacs,
                ["problem"] = i.Problem,
                ["malformed"] = i.Malformed,
            });
        }
        var pairArray = new JsonArray();
        foreach (var (p, rw) in pairs.Zip(pairRewrites))
            pairArray.Add(new JsonObject
            {
                ["resize"] = p.Resize.Name,
                ["resizeOp"] = p.Resize.OpType,
                ["conv"] = p.Conv.Name,
                ["mode"] = p.Mode,
                ["coordinate_transformation_mode"] = p.CoordinateTransformationMode,
                ["nearest_mode"] = p.NearestMode,
                ["scales"] = Json(p.Scales),
                ["sizes"] = Json(p.Sizes),
                ["convKernel"] = Json(p.ConvKernel),
                ["convStrides"] = Json(p.ConvStrides),
                ["convPads"] = Json(p.ConvPads),
                ["convDilations"] = Json(p.ConvDilations),
                ["convGroup"] = p.ConvGroup,
                ["convAutoPad"] = p.ConvAutoPad,
                ["inputShape"] = Json(shapes.Of(p.Resize.Input[0])),
                ["resizedShape"] = Json(shapes.Of(p.Resize.Output[0])),
                ["convOutputShape"] = Json(shapes.Of(p.Conv.Output[0])),
                ["otherConsumers"] = p.OtherConsumers,
                ["integerNearestRepetition"] = p.IsIntegerNearestRepetition,
                ["repetitionNote"] = p.RepetitionNote,
                ["rewritable"] = rw.Refusal is null,
                ["reason"] = rw.Refusal,
                ["macsBefore"] = rw.MacsBefore > 0 ? rw.MacsBefore : null,
                ["macsAfter"] = rw.MacsAfter > 0 ? rw.MacsAfter : null,
            });
        var zeroArray = new JsonArray();
        foreach (var z in zeroInsertions)
        {
            var m = z.Match;
            zeroArray.Add(new JsonObject
            {
                ["conv"] = z.Conv.Name,
                ["describe"] = Attributes.Describe(z.Conv),
                ["rewritable"] = m is not null,
                ["note"] = z.Note,
                ["style"] = m?.Style,
                ["input"] = m?.Input,
                ["strides"] = Json(m?.Strides),
                ["padBegin"] = Json(m?.PadBegin),
                ["padEnd"] = Json(m?.PadEnd),
                ["kernel"] = Json(m?.Kernel),
                ["group"] = m?.Group,
                ["inputShape"] = Json(StuffedInputShape(m, shapes)),
                ["convOutputShape"] = Json(shapes.Of(z.Conv.Output[0])),
                ["macsBefore"] = z.MacsBefore > 0 ? z.MacsBefore : null,
                ["macsAfter"] = z.MacsAfter > 0 ? z.MacsAfter : null,
            });
        }
        return new JsonObject
        {
            ["file"] = path,
            ["producer"] = new JsonObject { ["name"] = model.ProducerName, ["version"] = model.ProducerVersion },
            ["irVersion"] = model.IrVersion,
            ["opsets"] = new JsonArray(Opsets(model).Select(o => (JsonNode?)new JsonObject { ["domain"] = o.Domain, ["version"] = o.Version }).ToArray()),
            ["graph"] = index.Graph.Name,
            ["nodeCount"] = index.Graph.Node.Count,
            ["inputs"] = new JsonArray(index.Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(i => (JsonNode?)Value(i)).ToArray()),
            ["outputs"] = new JsonArray(index.Graph.Output.Select(o => (JsonNode?)Value(o)).ToArray()),
            ["shapeSource"] = shapes.Source,
            ["shapeNotes"] = Json(shapes.Notes),
            ["inputsNeedingShape"] = Json(shapes.InputsNeedingShape),
            ["ops"] = new JsonArray(histogram.Select(h => (JsonNode?)new JsonObject { ["op"] = h.Op, ["count"] = h.Count }).ToArray()),
            ["convTranspose"] = cts,
            ["resizeConv"] = pairArray,
            ["zeroInsertionConv"] = zeroArray,
            ["problems"] = Json(problems),
        };
    }
}
