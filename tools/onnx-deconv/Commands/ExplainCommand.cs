using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using OnnxDeconv.Explain;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Patterns;
using static OnnxDeconv.Cli.Commands.CliSupport;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// <c>onnx-deconv explain</c>: why a transposed convolution has the output size it has, from PyTorch-style arguments
/// or for every ConvTranspose of a model. The reasoning lives in <see cref="Explainer"/>; this class only renders it.
/// </summary>
internal static class ExplainCommand
{
    public static Command Create()
    {
        var model = new Argument<string?>("model") { Arity = ArgumentArity.ZeroOrOne, Description = "ONNX model: explain every ConvTranspose node in it" };
        var input = new Option<string?>("--input") { Description = "Input length(s) per spatial axis, e.g. 28 or 28,28" };
        var kernel = new Option<string?>("--kernel") { Description = "kernel_size (one value, or one per axis)" };
        var stride = new Option<string?>("--stride") { Description = "stride (default 1)" };
        var padding = new Option<string?>("--padding") { Description = "PyTorch padding p (default 0); ONNX pads=[p, p]" };
        var outputPadding = new Option<string?>("--output-padding") { Description = "output_padding (default 0)" };
        var dilation = new Option<string?>("--dilation") { Description = "dilation (default 1)" };
        var shape = new Option<string[]>("--shape") { Description = "Concrete input shape for a model with symbolic dims: name=1,3,64,64 (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var json = new Option<bool>("--json") { Description = "Machine-readable output (System.Text.Json)" };
        var svg = new Option<string?>("--svg") { Description = "Draw one axis to this .svg: the input, the zero-inserted view and the polyphase phases", HelpName = "file" };
        var svgAxis = new Option<int>("--svg-axis") { Description = "The axis --svg draws (default 0)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("explain", "Explain the output size of a transposed convolution: formula, zero-insertion view, the Conv it inverts, output_padding, ONNX pads, a picture.");
        cmd.Arguments.Add(model);
        foreach (var o in new Option[] { input, kernel, stride, padding, outputPadding, dilation, shape, json, svg, svgAxis }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            var stdout = pr.InvocationConfiguration.Output;
            var stderr = pr.InvocationConfiguration.Error;
            return Guard(stderr, () =>
            {
                string? path = pr.GetValue(model);
                bool anyArg = new[] { input, kernel, stride, padding, outputPadding, dilation }.Any(o => pr.GetResult(o) is not null);
                if (path is not null && anyArg)
                    throw new UsageException("give either a MODEL or --input/--kernel/... arguments, not both");
                if (path is not null && pr.GetValue(svg) is not null)
                    throw new UsageException("--svg draws the axis of --input/--kernel/... arguments, not of a MODEL");
                if (path is not null)
                    return ExplainModel(path, ParseShapes(pr.GetValue(shape)), pr.GetValue(json), stdout, stderr);
                var i = ParseList("--input", pr.GetValue(input));
                var k = ParseList("--kernel", pr.GetValue(kernel));
                if (i is null || k is null)
                    throw new UsageException("explain needs a MODEL, or at least --input and --kernel (e.g. --input 28 --kernel 5 --stride 2 --padding 0)");
                Explanation e;
                try
                {
                    e = Explainer.FromPyTorch(i, k, ParseList("--stride", pr.GetValue(stride)), ParseList("--padding", pr.GetValue(padding)),
                        ParseList("--output-padding", pr.GetValue(outputPadding)), ParseList("--dilation", pr.GetValue(dilation)));
                }
                catch (GeometryException ex)
                {
                    throw new UsageException($"--{ex.Attribute.Replace('_', '-')}: {ex.Message}");
                }
                if (pr.GetValue(svg) is { } svgPath)
                {
                    int axis = pr.GetValue(svgAxis);
                    if (axis < 0 || axis >= e.Axes.Count)
                        throw new UsageException($"--svg-axis: {axis} is not an axis of the input (0..{e.Axes.Count - 1})");
                    ExplainSvg.Write(svgPath, e.Axes[axis]);
                }
                if (pr.GetValue(json))
                    WriteJson(stdout, new JsonObject { ["source"] = "arguments", ["results"] = new JsonArray(ToJson(e, null, false)), ["errors"] = new JsonArray() });
                else
                    Render(stdout, e, null, false);
                if (pr.GetValue(svg) is { } drawn && !pr.GetValue(json)) stdout.WriteLine($"wrote {drawn} (axis {pr.GetValue(svgAxis)})");
                return ExitCodes.Ok;
            });
        });
        return cmd;
    }

    private static int ExplainModel(string path, IReadOnlyDictionary<string, long[]> overrides, bool json, TextWriter stdout, TextWriter stderr)
    {
        var model = LoadModel(path);
        var index = new GraphIndex(model);
        var nodes = index.Graph.Node.Where(ConvTransposeNode.Is).ToList();
        var shapes = ModelShapes.Resolve(model, path, overrides,
            nodes.SelectMany(n => n.Input.Take(2).Concat(n.Output.Take(1))));
        var results = new JsonArray();
        var errors = new JsonArray();
        bool malformed = false;
        if (!json)
        {
            stdout.WriteLine($"{path}: {nodes.Count} ConvTranspose node(s)");
            foreach (var note in shapes.Notes) ExplainText.Para(stdout, $"note: {note}");
        }
        foreach (var node in nodes)
        {
            string name = Attributes.Describe(node);
            try
            {
                var attrs = ConvTransposeNode.ReadAttributes(node);
                var x = node.Input.Count > 0 ? shapes.Of(node.Input[0]) : null;
                var w = node.Input.Count > 1 ? shapes.Of(node.Input[1]) : null;
                if (x is null || w is null)
                {
                    string msg = $"shape of {(x is null ? "input X" : "weight W")} unknown" +
                        (shapes.InputsNeedingShape.Count > 0 ? $"; give --shape for {string.Join(", ", shapes.InputsNeedingShape)}" : "");
                    errors.Add(new JsonObject { ["node"] = name, ["message"] = msg, ["malformed"] = false });
                    if (!json) stdout.WriteLine($"\n{name}: {msg}");
                    continue;
                }
                var e = Explainer.Explain(ConvTransposeGeometry.Resolve(attrs, x, w));
                if (json) results.Add(ToJson(e, name, true));
                else Render(stdout, e, name, true);
            }
            catch (Exception ex) when (ex is GeometryException or AttributeException)
            {
                malformed = true;
                string msg = ex is GeometryException g ? $"attribute '{g.Attribute}': {g.Message}" : ex.Message;
                errors.Add(new JsonObject { ["node"] = name, ["message"] = msg, ["malformed"] = true });
                if (!json) stdout.WriteLine($"\n{name}: cannot explain: {msg}");
                stderr.WriteLine($"error: {path}: node '{name}': {msg}");
            }
        }
        if (json)
            WriteJson(stdout, new JsonObject
            {
                ["source"] = "model",
                ["file"] = path,
                ["shapeSource"] = shapes.Source,
                ["notes"] = Json(shapes.Notes),
                ["results"] = results,
                ["errors"] = errors,
            });
        return malformed ? ExitCodes.InvalidInput : ExitCodes.Ok;
    }

    private static void Render(TextWriter o, Explanation e, string? node, bool fullShapes)
    {
        var g = e.Geometry;
        o.WriteLine();
        if (node is not null) ExplainText.Para(o, $"== {node}");
        var inSpatial = g.Axes.Select(a => a.Input);
        var outSpatial = g.Axes.Select(a => a.Output);
        ExplainText.Para(o, fullShapes
            ? $"input {Shape(g.InputShape)} -> output {Shape(g.OutputShape)}   (spatial {Shape(inSpatial)} -> {Shape(outSpatial)}; W {Shape(g.WeightShape)}, group {g.Group})"
            : $"input {Shape(inSpatial)} -> output {Shape(outSpatial)}");

        // Identical axes (the usual square case) are explained once.
        foreach (var group in e.Axes.GroupBy(a => a.Geometry))
        {
            var ax = group.First();
            var a = ax.Geometry;
            var axesText = group.Count() == 1 ? $"axis {ax.Axis}" : $"axes {string.Join(", ", group.Select(x => x.Axis))}";
            string pads = a.PadBegin == a.PadEnd ? $"p={a.PadBegin}" : $"pads={a.PadBegin}|{a.PadEnd}";
            o.WriteLine();
            ExplainText.Para(o, $"{axesText}: I={a.Input} k={a.Kernel} s={a.Stride} {pads} d={a.Dilation} output_padding={a.OutputPadding}");
            ExplainText.Item(o, "output size", ax.Formula);
            ExplainText.Item(o, "", $"  = {ax.FormulaFilled}");
            ExplainText.Item(o, "why", ax.Why);
            ExplainText.Item(o, "zero insertion", $"{a.Input} input(s) with s-1 = {a.Stride - 1} zero(s) between neighbours -> length {ax.ZeroInsertedLength}; " +
                $"implicit padding d*(k-1)-p = {Signed(ax.ImplicitPadBegin)} at the begin, {Signed(ax.ImplicitPadEnd)} at the end (d*(k-1)-p+output_padding) -> length {ax.ZeroInsertedLength + ax.ImplicitPadBegin + ax.ImplicitPadEnd}; " +
                $"a stride-1 Conv with the flipped kernel (extent {a.DilatedKernel}) gives {a.Output}");
            if (ax.InverseConv is { } inv)
            {
                string conv = ConvText(inv.Kernel, inv.Stride, inv.PadBegin, inv.PadEnd, inv.Dilation);
                ExplainText.Item(o, "inverts", $"{conv}, which maps {string.Join(" and ", inv.Preimages.Select(p => p.ConvInput.ToString(CultureInfo.InvariantCulture)))} to {a.Input}:");
                foreach (var p in inv.Preimages)
                    ExplainText.Item(o, "", $"{p.ConvInput} -> {conv} -> {a.Input} -> ConvTranspose with output_padding={p.OutputPadding} -> {p.ConvInput}{(p.Selected ? "   (this one)" : "")}");
                if (!inv.Preimages.Any(p => p.Selected))
                    ExplainText.Item(o, "", $"output_padding={a.OutputPadding} is >= stride: the output {a.Output} is not a size that Conv maps to {a.Input}");
            }
            else ExplainText.Item(o, "inverts", "no Conv: the padding is negative (output_shape asks for more than the full output)");
            if (ax.RoundTrip is { } rt)
            {
                string conv = ConvText(a.Kernel, a.Stride, a.PadBegin, a.PadEnd, a.Dilation);
                string tail = rt.OutputPaddingNeeded == 0
                    ? "the same size: output_padding=0 is right"
                    : $"output_padding={rt.OutputPaddingNeeded} gives {rt.ConvInput}";
                ExplainText.Item(o, "round trip", $"{rt.ConvInput} -> {conv} -> {rt.ConvOutput} -> ConvTranspose(same k, s, p, d) -> {rt.TransposeOutput}; {tail}");
            }
            ExplainText.Compute(o, ax);
            ExplainText.Item(o, "picture", $"(drawn for I={ax.PictureInput}{(ax.PictureInput != a.Input ? $"; I={a.Input} repeats the middle" : "")})");
            ExplainText.Para(o, ax.Picture[0], indent: 4);
            foreach (var line in ax.Picture.Skip(1)) o.WriteLine($"    {line}");
        }
        o.WriteLine();
        ExplainText.Para(o, $"ONNX attributes: kernel_shape={Dims(e.OnnxKernelShape)} strides={Dims(e.OnnxStrides)} pads={Dims(e.OnnxPads)} output_padding={Dims(e.OnnxOutputPadding)} dilations={Dims(e.OnnxDilations)}" +
            (g.Group != 1 ? $" group={g.Group}" : ""));
        ExplainText.Para(o, e.PyTorchExpressible
            ? $"PyTorch: padding={Dims(g.Axes.Select(a => a.PadBegin))} output_padding={Dims(e.OnnxOutputPadding)} (ONNX pads=[p..., p...] repeats PyTorch's padding for begin and end)"
            : "PyTorch: asymmetric pads have no PyTorch padding= equivalent (pad the output or crop it explicitly)");
        ExplainText.Para(o, $"ONNX Runtime: {e.OrtNote}");
        ExplainText.Costs(o, e);
    }

    private static string ConvText(long k, long s, long pb, long pe, long d) =>
        $"Conv(k={k}, s={s}, {(pb == pe ? $"p={pb}" : $"pads={pb}|{pe}")}{(d != 1 ? $", d={d}" : "")})";

    private static string Signed(long v) => v < 0 ? $"{v} (crop {-v})" : v.ToString(CultureInfo.InvariantCulture);

    private static JsonObject ToJson(Explanation e, string? node, bool fullShapes)
    {
        var g = e.Geometry;
        var axes = new JsonArray();
        foreach (var ax in e.Axes)
        {
            var a = ax.Geometry;
            var obj = new JsonObject
            {
                ["axis"] = ax.Axis,
                ["input"] = a.Input,
                ["kernel"] = a.Kernel,
                ["stride"] = a.Stride,
                ["dilation"] = a.Dilation,
                ["padBegin"] = a.PadBegin,
                ["padEnd"] = a.PadEnd,
                ["outputPadding"] = a.OutputPadding,
                ["output"] = a.Output,
                ["formula"] = ax.Formula,
                ["formulaFilled"] = ax.FormulaFilled,
                ["why"] = ax.Why,
                ["fullLength"] = ax.FullLength,
                ["zeroInsertedLength"] = ax.ZeroInsertedLength,
                ["implicitPadBegin"] = ax.ImplicitPadBegin,
                ["implicitPadEnd"] = ax.ImplicitPadEnd,
                ["inverseConv"] = ax.InverseConv is { } inv ? new JsonObject
                {
                    ["kernel"] = inv.Kernel,
                    ["stride"] = inv.Stride,
                    ["padBegin"] = inv.PadBegin,
                    ["padEnd"] = inv.PadEnd,
                    ["dilation"] = inv.Dilation,
                    ["preimages"] = new JsonArray(inv.Preimages.Select(p => (JsonNode?)new JsonObject
                    {
                        ["convInput"] = p.ConvInput,
                        ["outputPadding"] = p.OutputPadding,
                        ["selected"] = p.Selected,
                    }).ToArray()),
                } : null,
                ["roundTrip"] = ax.RoundTrip is { } rt ? new JsonObject
                {
                    ["convInput"] = rt.ConvInput,
                    ["convOutput"] = rt.ConvOutput,
                    ["transposeOutput"] = rt.TransposeOutput,
                    ["outputPaddingNeeded"] = rt.OutputPaddingNeeded,
                } : null,
                ["pictureInput"] = ax.PictureInput,
                ["picture"] = Json(ax.Picture),
                ["collapses"] = Json(ax.Collapses),
                ["compute"] = ExplainText.Json(ax.Compute),
            };
            axes.Add(obj);
        }
        var result = new JsonObject
        {
            ["node"] = node,
            ["spatialInput"] = Json(g.Axes.Select(a => a.Input)),
            ["spatialOutput"] = Json(g.Axes.Select(a => a.Output)),
        };
        if (fullShapes)
        {
            result["inputShape"] = Json(g.InputShape);
            result["weightShape"] = Json(g.WeightShape);
            result["outputShape"] = Json(g.OutputShape);
            result["group"] = g.Group;
            result["usefulMacs"] = g.UsefulMacs;
        }
        result["axes"] = axes;
        result["onnx"] = new JsonObject
        {
            ["kernel_shape"] = Json(e.OnnxKernelShape),
            ["strides"] = Json(e.OnnxStrides),
            ["pads"] = Json(e.OnnxPads),
            ["output_padding"] = Json(e.OnnxOutputPadding),
            ["dilations"] = Json(e.OnnxDilations),
        };
        result["pytorchExpressible"] = e.PyTorchExpressible;
        result["ortAccepts"] = e.OrtAccepts;
        result["ortNote"] = e.OrtNote;
        result["costs"] = ExplainText.Json(e.Costs);
        return result;
    }
}
