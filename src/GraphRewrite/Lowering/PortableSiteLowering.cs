// Before:  X ─ ConvTranspose(W, B; strides s, pads, dilations, group, auto_pad/output_shape/output_padding) ─ Y
// After:   X ─ Conv(W', B'; stride 1)  [one Conv with Cout*prod(s) channels, or one Conv per phase + Concat]
//            ─ DepthToSpace | Reshape/Transpose/Reshape   (interleave the phases; absent when every stride is 1)
//            ─ Slice                                      (crop pads/output_padding; absent when nothing to crop) ─ Y
// Preconditions beyond the site's: a form valid at the model's opset (float16/bfloat16 interleave with Reshape/Transpose:
// ONNX Runtime's CPU has no DepthToSpace for them). Y keeps its name, so its value_info and every
// consumer stay valid; the opset import is never changed.
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Patterns;
using OnnxDeconv.Plan;

namespace OnnxDeconv.GraphRewrite.Lowering;

/// <summary>The portable plan of a site: phases, the form and interleave chosen, and how MACs were estimated.</summary>
public sealed record PortablePlan(TransposedConvPlan Plan, LoweringChoice Choice, string? Note);

/// <summary>Lowers a site to the zero-free portable form (see the file header) with a given <see cref="PhaseForm"/>.</summary>
internal sealed class PortableSiteLowering(string name, PhaseForm form) : ISiteLowering
{
    public string Name { get; } = name;
    public PhaseForm Form { get; } = form;

    public string? CanLower(ConvTransposeSite site)
    {
        if (site.Quantized is not null) return QdqPortableLowering.CanLower(site);
        try
        {
            _ = Prepare(site, Form);
            return null;
        }
        catch (Exception e) when (e is LoweringException or GeometryException or ArgumentException or OverflowException) { return e.Message; }
    }

    /// <summary>The plan and lowering choice (reads no weights); throws <see cref="LoweringException"/> when no form is valid.</summary>
    public static PortablePlan Prepare(ConvTransposeSite site, PhaseForm form)
    {
        var g = site.Geometry;
        bool hasBias = site.BiasName is not null, outputShape = site.Attributes.OutputShape is not null;
        var request = Request(site, form, s => s);
        var plan = TransposedConvPlanBuilder.Build(g, hasBias, outputShape);
        var choice = PortableLowering.Choose(plan, request);
        string? note = site.MacsNote;

        // A static input of length 1 (e.g. a GAN's 1x1 latent) makes the output independent of the stride: with
        // stride = K every phase has exactly one tap, so the Conv is 1x1 instead of K wide over mostly padding.
        if (site.StaticSpatial && g.Axes.Any(SingleInputRestride))
        {
            var restrided = g with { Axes = [.. g.Axes.Select(a => SingleInputRestride(a) ? a with { Stride = a.Kernel } : a)] };
            var altPlan = TransposedConvPlanBuilder.Build(restrided, hasBias, outputShape);
            LoweringChoice? alt = null;
            try { alt = PortableLowering.Choose(altPlan, request); }
            catch (LoweringException) { } // no valid form for the restrided plan at this opset: keep the original one
            if (alt is not null && alt.Macs < choice.Macs)
            {
                (plan, choice) = (altPlan, alt);
                note = "input length 1: stride taken as the kernel size";
            }
        }
        return new PortablePlan(plan, choice, note);
    }

    public LoweredSite Lower(ConvTransposeSite site, GraphEditor editor, LoweringEnvironment environment)
    {
        if (site.Quantized is not null) return QdqPortableLowering.Lower(site, editor);
        var p = Prepare(site, Form);
        string stem = string.IsNullOrEmpty(site.Node.Name) ? site.Output : site.Node.Name;
        // float16/bfloat16: lowered from exact float32 copies (values only rearranged) and narrowed back; the spill
        // file holds float32 slices, so half sites are not spilled.
        var lowered = PortableLowering.Lower(p.Plan, site.Weights(environment.Weights), site.Bias(environment.Weights),
            Request(site, p.Choice.Form, s => editor.UniqueName($"{stem}/{s}")) with { Sink = site.IsHalf ? null : environment.Spill?.For(editor.Model) });
        lowered = HalfInitializers.Narrow(lowered, site.ElementType);
        editor.ReplaceNode(site.Node, lowered.Nodes);
        foreach (var t in lowered.Initializers) editor.AddInitializer(t, keepIrConvention: true);
        editor.RemoveIfUnused(site.WeightName);
        if (site.BiasName is { } bias) editor.RemoveIfUnused(bias);
        return new LoweredSite(true, Ops.ConvTranspose.OpType, p.Note is null ? lowered.Description : $"{lowered.Description} ({p.Note})",
            p.Plan.UsefulMacs, lowered.Choice.Macs);
    }

    private static LoweringRequest Request(ConvTransposeSite site, PhaseForm form, Func<string, string> uniqueName) => new()
    {
        Input = site.Input, Output = site.Output, UniqueName = uniqueName, Opset = site.Opset, StaticSpatial = site.StaticSpatial, Form = form,
        ElementType = site.ElementType,
    };

    private static bool SingleInputRestride(AxisGeometry a) => a.Input == 1 && a.Dilation == 1 && a.Kernel > 1 && a.Stride != a.Kernel;
}
