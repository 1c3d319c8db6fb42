using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.GraphRewrite.Runtime;

/// <summary>Shapes could not be probed; the message says which input needs a concrete shape or what ONNX Runtime refused.</summary>
public sealed class ShapeProbeException(string message, IReadOnlyList<string>? inputsNeedingShape = null, Exception? inner = null)
    : InvalidInputException(message, inner)
{
    /// <summary>Graph inputs that have a symbolic or unknown dimension and no shape was given for.</summary>
    public IReadOnlyList<string> InputsNeedingShape { get; } = inputsNeedingShape ?? [];
}

/// <summary>Concrete shapes of a model's graph inputs, and what was assumed to get them.</summary>
public sealed record ProbeInputs(IReadOnlyDictionary<string, long[]> Shapes, IReadOnlyList<string> Assumptions, IReadOnlyList<string> Missing);

/// <summary>Result of <see cref="ShapeProbe.Probe"/>: concrete shape of each requested value (absent when not a tensor).</summary>
public sealed record ProbeResult(IReadOnlyDictionary<string, long[]> Shapes, IReadOnlyDictionary<string, long[]> InputShapes, IReadOnlyList<string> Assumptions);

/// <summary>
/// Finds the concrete shapes of intermediate values by running the model once in ONNX Runtime on zero inputs, with the
/// wanted values added as extra graph outputs on a copy of the model (static shape inference cannot see through
/// Reshape/Shape chains and symbolic dims; running is exact). The caller's model is never modified.
/// </summary>
public static class ShapeProbe
{
    /// <summary>
    /// Concrete shapes for every real graph input (initializers listed as inputs are left alone): the shape given in
    /// <paramref name="overrides"/>, else the declared one. A symbolic leading (batch) dimension is taken as 1 and said so
    /// in Assumptions; any other unknown dimension lists the input in Missing.
    /// </summary>
    public static ProbeInputs ResolveInputs(ModelProto model, IReadOnlyDictionary<string, long[]>? overrides = null)
    {
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var assumptions = new List<string>();
        var missing = new List<string>();
        Shapes.ShapeSpecs.CheckNames(model, overrides); // before any work: exit 3 naming the graph inputs
        foreach (var input in RealInputs(model, initializers))
        {
            var given = overrides?.GetValueOrDefault(input.Name);
            if (input.Type?.TensorType is null)
                throw new ShapeProbeException($"graph input '{input.Name}' is not a tensor; shapes cannot be probed");
            var declared = Shapes.SymbolicDims.Declared(input);
            if (declared is null)
            {
                if (given is not null) shapes[input.Name] = given;
                else missing.Add(input.Name);
                continue;
            }
            // The one policy (docs/shapes.md): --shape, else declared, else a symbolic batch taken as 1.
            var resolved = Shapes.SymbolicDims.TryResolve(input.Name, declared.Value.Dims, declared.Value.Names, given, out _);
            if (resolved is null) { missing.Add(input.Name); continue; }
            shapes[input.Name] = resolved.Dims;
            if (resolved.Assumption is not null) assumptions.Add(resolved.Assumption);
        }
        return new ProbeInputs(shapes, assumptions, missing);
    }

    /// <summary>
    /// Runs <paramref name="model"/> once on zero inputs and returns the shapes of <paramref name="values"/>.
    /// Constant values (initializers) and graph inputs are answered without running. <paramref name="externalDataDirectory"/>
    /// is where tensors stored in side files are found (the model's folder).
    /// </summary>
    public static ProbeResult Probe(ModelProto model, IEnumerable<string> values,
        IReadOnlyDictionary<string, long[]>? inputShapes = null, string? externalDataDirectory = null)
    {
        var inputs = ResolveInputs(model, inputShapes);
        if (inputs.Missing.Count > 0)
            throw new ShapeProbeException(
                string.Join("; ", inputs.Missing.Select(m => $"graph input '{m}' has a symbolic or unknown dimension ({DeclaredShape(model, m)}): give it with --shape {m}=d0,d1,...")),
                inputs.Missing);

        var index = new GraphIndex(model);
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var toRun = new List<string>();
        foreach (var v in values.Distinct(StringComparer.Ordinal))
        {
            if (inputs.Shapes.TryGetValue(v, out var s)) result[v] = s;
            else if (index.Initializer(v) is { } t) result[v] = t.Dims.ToArray();
            else if (index.Producer(v) is not null) toRun.Add(v);
        }
        if (toRun.Count == 0) return new ProbeResult(result, inputs.Shapes, inputs.Assumptions);

        var copy = model.Clone();
        var outputs = copy.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var v in toRun)
            if (outputs.Add(v)) copy.Graph.Output.Add(new ValueInfoProto { Name = v }); // untyped: ONNX Runtime infers it

        var options = new OrtRunOptions
        {
            Configure = so =>
            {
                // A failed probe is reported through ShapeProbeException; keep ONNX Runtime's own log off stderr.
                so.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
                // A model this tool rewrote for the plugin holds ai.onnxdeconv nodes: ONNX Runtime loads it only with the plugin.
                if (OnnxDeconvSessionOptions.UsesPlugin(copy)) so.RegisterOnnxDeconv();
                if (externalDataDirectory is not null)
                    so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", externalDataDirectory);
            },
        };
        // Before ONNX Runtime sees the model: a refused input must not cost a session either.
        foreach (var (name, shape) in inputs.Shapes)
        {
            var decl = copy.Graph.Input.First(i => i.Name == name);
            var type = (TensorElementType)decl.Type.TensorType.ElemType;
            if (type == TensorElementType.String)
                throw new ShapeProbeException($"graph input '{name}' is a string tensor; shapes cannot be probed with zero inputs");
            CheckProbeSize(name, type, shape);
        }
        var feeds = new List<OrtValue>();
        try
        {
            using var runner = CreateRunner(copy, options);
            var names = new List<string>();
            foreach (var (name, shape) in inputs.Shapes)
            {
                var decl = copy.Graph.Input.First(i => i.Name == name);
                var type = (TensorElementType)decl.Type.TensorType.ElemType;
                var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, shape);
                feeds.Add(value);
                value.GetTensorMutableRawData().Clear();
                names.Add(name);
            }
            using var runOptions = new RunOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL };
            using var outs = Run(runner, runOptions, names, feeds, toRun);
            int k = 0;
            foreach (var o in outs)
            {
                string name = toRun[k++];
                if (o.OnnxType != OnnxValueType.ONNX_TYPE_TENSOR) continue;
                result[name] = o.GetTensorTypeAndShape().Shape;
            }
        }
        finally
        {
            foreach (var f in feeds) f.Dispose();
        }
        return new ProbeResult(result, inputs.Shapes, inputs.Assumptions);
    }

    /// <summary>Zero inputs larger than this are not allocated (nor run: the compute grows with them): a hostile or mistaken declared shape must not exhaust memory or time.</summary>
    public const long MaxProbeInputBytes = 64L << 20;

    private static void CheckProbeSize(string name, TensorElementType type, long[] shape)
    {
        long size = ElementSize(type);
        if (size == 0)
            throw new ShapeProbeException($"graph input '{name}' has element type {(int)type}, which shapes cannot be probed with");
        long bytes;
        try { bytes = checked(OnnxDeconv.GraphRewrite.IO.Tensors.ElementCount(shape) * size); }
        catch (OverflowException) { bytes = long.MaxValue; }
        if (bytes > MaxProbeInputBytes)
            throw new ShapeProbeException(
                $"graph input '{name}' has shape [{string.Join(",", shape)}] ({(bytes == long.MaxValue ? "over 2^63" : bytes.ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes), over the {MaxProbeInputBytes >> 20} MiB limit for probing shapes with zero inputs: give a smaller shape with --shape {name}=d0,d1,...");
    }

    // Bytes per element of the tensor types a probe can allocate; 0 for types it cannot (strings, unknown values).
    private static long ElementSize(TensorElementType type) => (int)type switch
    {
        2 or 3 or 9 or 17 or 18 or 19 or 20 or 21 or 22 or 23 or 24 or 25 => 1, // uint8, int8, bool, float8 and 4-bit types (rounded up)
        4 or 5 or 10 or 16 => 2, // uint16, int16, float16, bfloat16
        1 or 6 or 12 => 4, // float, int32, uint32
        7 or 11 or 13 or 14 => 8, // int64, double, uint64, complex64
        15 => 16, // complex128
        _ => 0,
    };

    private static OrtRunner CreateRunner(ModelProto model, OrtRunOptions options)
    {
        try { return new OrtRunner(model, options); }
        catch (OnnxRuntimeException e)
        { throw new ShapeProbeException($"ONNX Runtime could not load the model to probe shapes: {e.Message}", null, e); }
        catch (OnnxDeconv.GraphRewrite.IO.ModelFormatException e) // NativeGuard: a value ONNX Runtime would crash on
        { throw new ShapeProbeException($"shapes not probed: {e.Message}", null, e); }
    }

    private static IDisposableReadOnlyCollection<OrtValue> Run(OrtRunner runner, RunOptions runOptions,
        IReadOnlyCollection<string> names, IReadOnlyCollection<OrtValue> feeds, IReadOnlyCollection<string> outputs)
    {
        try { return runner.Session.Run(runOptions, names, feeds, outputs); }
        catch (OnnxRuntimeException e)
        { throw new ShapeProbeException($"ONNX Runtime could not run the model on zero inputs to probe shapes: {e.Message}", null, e); }
    }

    private static IEnumerable<ValueInfoProto> RealInputs(ModelProto model, HashSet<string> initializers) =>
        model.Graph.Input.Where(i => !initializers.Contains(i.Name));

    /// <summary>"[N,3,H,W]"-style text of a graph input's declared shape.</summary>
    public static string DeclaredShape(ModelProto model, string input) =>
        model.Graph.Input.FirstOrDefault(i => i.Name == input) is { } v ? DeclaredShape(v) : "not a graph input";

    /// <summary>"[N,3,H,W]"-style text of a value's declared shape.</summary>
    public static string DeclaredShape(ValueInfoProto value)
    {
        var shape = value.Type?.TensorType?.Shape;
        if (shape is null) return "no shape declared";
        return "[" + string.Join(",", shape.Dim.Select(d =>
            d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : "?")) + "]";
    }
}
