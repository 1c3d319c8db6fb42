using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.BackendTests;

/// <summary>
/// Binds given values of graph inputs as initializers (and removes them from the graph inputs), so a rewrite that
/// needs constant weights can handle ONNX node tests, whose weights are graph inputs.
/// </summary>
public static class InputFreezer
{
    /// <summary>IR version 4 is the first that allows an initializer that is not also a graph input.</summary>
    public const long MinIrVersionForPureInitializers = 4;

    /// <summary>
    /// Returns a copy of <paramref name="model"/> with each of <paramref name="values"/> (named after graph inputs) as an
    /// initializer. Raises the IR version to 4 when older, because an initializer listed as a graph input stays
    /// overridable at run time and so would not count as constant.
    /// </summary>
    public static ModelProto Freeze(ModelProto model, IEnumerable<TensorValue> values)
    {
        var frozen = model.Clone();
        var graph = frozen.Graph;
        foreach (var v in values)
        {
            var input = graph.Input.FirstOrDefault(i => i.Name == v.Name)
                ?? throw new VerificationInputException($"--freeze-inputs: '{v.Name}' is not a graph input (inputs: {string.Join(", ", graph.Input.Select(i => i.Name))})");
            graph.Input.Remove(input);
            var existing = graph.Initializer.FirstOrDefault(t => t.Name == v.Name);
            if (existing is not null) graph.Initializer.Remove(existing);
            graph.Initializer.Add(v.ToProto(v.Name));
        }
        if (frozen.IrVersion < MinIrVersionForPureInitializers)
        {
            // Before IR 4 every initializer is listed as a graph input and is still a constant. Raising the IR version
            // would make those inputs overridable (no longer constant), so they stop being inputs: same meaning as before.
            var inits = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var i in graph.Input.Where(i => inits.Contains(i.Name)).ToList()) graph.Input.Remove(i);
            frozen.IrVersion = MinIrVersionForPureInitializers;
        }
        return frozen;
    }

    /// <summary>
    /// Which graph inputs to freeze: the named ones (each must be a runtime input), or all but the first when
    /// <paramref name="names"/> is empty.
    /// </summary>
    public static IReadOnlyList<string> Select(IReadOnlyList<string> runtimeInputs, IReadOnlyList<string> names)
    {
        if (names.Count == 0) return runtimeInputs.Skip(1).ToList();
        foreach (var n in names)
            if (!runtimeInputs.Contains(n))
                throw new VerificationInputException($"--freeze-inputs: '{n}' is not a graph input (inputs: {string.Join(", ", runtimeInputs)})");
        return names;
    }

    /// <summary>Graph inputs that are not initializers, in order: what backend-test input files bind to.</summary>
    public static IReadOnlyList<string> RuntimeInputs(ModelProto model)
    {
        var inits = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        return model.Graph.Input.Select(i => i.Name).Where(n => !inits.Contains(n)).ToList();
    }
}
