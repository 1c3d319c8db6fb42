// Shapes/ owns how a graph input's concrete shape is decided: the one `--shape` parser (here) and the one policy for
// symbolic dims (SymbolicDims). It reads models, never edits them; every command (explain, info, optimize, verify,
// test, bench) goes through these two files. The rule is documented in docs/shapes.md.
using System.Globalization;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.Shapes;

/// <summary>The CLI's repeatable <c>--shape NAME=D1,D2,...</c> (also <c>1x3x64x64</c>): parsed once, checked against a model once.</summary>
public static class ShapeSpecs
{
    /// <summary>
    /// Name to dims. Malformed text, a dimension that is not a positive integer, or a name given twice is invalid input
    /// (<see cref="VerificationInputException"/>, exit 3) in every command.
    /// </summary>
    public static IReadOnlyDictionary<string, long[]> Parse(IEnumerable<string>? specs)
    {
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var spec in specs ?? [])
        {
            int eq = spec.LastIndexOf('=');
            if (eq <= 0 || eq == spec.Length - 1)
                throw new VerificationInputException($"--shape '{spec}': expected NAME=D1,D2,... (e.g. --shape input=1,3,64,64)");
            var name = spec[..eq];
            var dims = new List<long>();
            foreach (var part in spec[(eq + 1)..].Split(',', 'x', 'X'))
            {
                if (!long.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var d) || d <= 0)
                    throw new VerificationInputException($"--shape '{spec}': '{part}' is not a positive integer dimension");
                dims.Add(d);
            }
            if (!result.TryAdd(name, [.. dims]))
                throw new VerificationInputException($"--shape: input '{name}' is given twice");
        }
        return result;
    }

    /// <summary>The graph inputs a shape can be given for: graph inputs that are not initializers (IR &lt; 4 lists those too).</summary>
    public static IReadOnlyList<string> InputNames(ModelProto model)
    {
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        return model.Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(i => i.Name).ToList();
    }

    /// <summary>Fails (exit 3) on a --shape naming no graph input, listing the inputs: called before any work is done.</summary>
    public static void CheckNames(ModelProto model, IReadOnlyDictionary<string, long[]>? shapes, string? modelName = null)
    {
        if (shapes is null || shapes.Count == 0) return;
        var inputs = InputNames(model);
        foreach (var name in shapes.Keys)
            if (!inputs.Contains(name))
                throw new VerificationInputException(
                    $"--shape names '{name}', which is not a graph input{(modelName is null ? "" : $" of {modelName}")} (inputs: {(inputs.Count == 0 ? "none" : string.Join(", ", inputs))})");
    }

    /// <summary>
    /// The shapes that apply to <paramref name="model"/>: those naming one of its inputs. `test` over several folders
    /// gives one set of --shape to models with different inputs; each takes what names its own.
    /// </summary>
    public static IReadOnlyDictionary<string, long[]> ApplicableTo(ModelProto model, IReadOnlyDictionary<string, long[]>? shapes)
    {
        if (shapes is null || shapes.Count == 0) return new Dictionary<string, long[]>(StringComparer.Ordinal);
        var inputs = InputNames(model).ToHashSet(StringComparer.Ordinal);
        return shapes.Where(kv => inputs.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
    }
}
