using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>A model to verify: in memory, or a file path (needed for models over 2 GB or with external data, which ONNX Runtime resolves next to the file).</summary>
public sealed class ModelSource
{
    /// <summary>ONNX Runtime session config key naming the folder that holds a model's external data files.</summary>
    public const string ExternalDataFolderKey = "session.model_external_initializers_file_folder_path";

    private ModelSource(string description, ModelProto? model, byte[]? bytes, string? path, string? externalDataFolder = null)
    {
        Description = description; Model = model; Bytes = bytes; Path = path; ExternalDataFolder = externalDataFolder;
    }

    public string Description { get; }
    public ModelProto? Model { get; }
    public byte[]? Bytes { get; }
    public string? Path { get; }
    /// <summary>Where ONNX Runtime finds external data of an in-memory model (e.g. the folder of the file it was rewritten from).</summary>
    public string? ExternalDataFolder { get; }

    public static ModelSource FromModel(ModelProto model, string description = "model", string? externalDataFolder = null) =>
        new(description, model, null, null, externalDataFolder);
    public static ModelSource FromBytes(byte[] bytes, string description) => new(description, null, bytes, null);
    public static ModelSource FromFile(string path) => new(path, null, null, path);

    internal OrtRunner CreateRunner(OrtRunOptions options)
    {
        if (ExternalDataFolder is { } folder)
        {
            var configure = options.Configure;
            options = options with
            {
                Configure = so => { so.AddSessionConfigEntry(ExternalDataFolderKey, System.IO.Path.GetFullPath(folder)); configure?.Invoke(so); },
            };
        }
        return Path is not null ? new OrtRunner(Path, options)
        : Bytes is not null ? new OrtRunner(Bytes, options)
        : new OrtRunner(Model!, options);
    }
}

public sealed record VerifyOptions
{
    public Tolerance Tolerance { get; init; } = Tolerance.Default;
    public int Seed { get; init; }
    /// <summary>Concrete shapes for inputs with symbolic dims (see <see cref="ShapeOverrides"/>).</summary>
    public IReadOnlyDictionary<string, long[]> Shapes { get; init; } = new Dictionary<string, long[]>();
    /// <summary>Folder of <c>input_N.pb</c> files to use instead of random inputs.</summary>
    public string? InputsDir { get; init; }
    /// <summary>Configures both sessions (e.g. registers the OnnxDeconv custom op); optimizations stay disabled.</summary>
    public Action<SessionOptions>? Configure { get; init; }
    /// <summary>
    /// Whether outputs that miss the tolerance only numerically get judged against the model's own noise floor
    /// (<see cref="Verification.NoiseFloor"/>). Off for the isolated nodes that judgement itself verifies.
    /// </summary>
    public bool NoiseFloor { get; init; } = true;
}

/// <summary>Outcome of running the original and the rewritten model on the same inputs.</summary>
public sealed record VerificationReport
{
    public required bool Passed { get; init; }
    public required IReadOnlyList<OutputComparison> Outputs { get; init; }
    /// <summary>Where the inputs came from: "random, seed N" or the input folder.</summary>
    public required string InputSource { get; init; }
    public required IReadOnlyList<TensorValue> Inputs { get; init; }
    public required Tolerance Tolerance { get; init; }
    /// <summary>Set when the rewritten model could not be loaded or run (the whole verification fails).</summary>
    public string? Error { get; init; }
    /// <summary>Set when some outputs missed the tolerance and were judged against the original's noise floor; <see cref="Passed"/> is its verdict then.</summary>
    public NoiseFloor.Judgement? NoiseFloor { get; init; }
}

/// <summary>
/// Runs the original and the rewritten model through ONNX Runtime with graph optimizations disabled, on seeded random
/// inputs (or given input files), and compares every output of the original with the same-named rewritten output.
/// Problems with the original or the inputs throw <see cref="VerificationInputException"/>; problems with the
/// rewritten model make the report fail.
/// </summary>
public static class Verifier
{
    public static VerificationReport Verify(ModelSource original, ModelSource rewritten, VerifyOptions? options = null)
    {
        options ??= new VerifyOptions();
        var ortOptions = new OrtRunOptions { Configure = options.Configure };

        OrtRunner origRunner;
        try { origRunner = original.CreateRunner(ortOptions); }
        catch (OnnxRuntimeException e) { throw new VerificationInputException($"{original.Description}: ONNX Runtime cannot load it: {e.Message}", e); }
        using var _ = origRunner;

        var inputNames = origRunner.Session.InputNames.ToList();
        var assumed = new List<string>();
        IReadOnlyList<TensorValue> inputs = options.InputsDir is not null
            ? InputFiles.LoadInputs(options.InputsDir, inputNames)
            : InputGenerator.Generate(origRunner.Session, options.Shapes, options.Seed, assumed);
        string source = (options.InputsDir is not null ? $"files in {options.InputsDir}" : $"random, seed {options.Seed}")
            + string.Concat(assumed.Select(a => $"; {a}"));

        var outputNames = origRunner.Session.OutputNames.ToList();
        IReadOnlyList<TensorValue> expected;
        try { expected = origRunner.Run(inputs, outputNames); }
        catch (OnnxRuntimeException e)
        {
            throw new VerificationInputException($"{original.Description}: ONNX Runtime failed to run it on the inputs ({Shapes(inputs)}): {e.Message}", e);
        }
        // One session at a time: a large model's weights are not held by both sessions at once.
        origRunner.Dispose();

        VerificationReport Fail(string error) => new()
        {
            Passed = false, Error = error, InputSource = source, Inputs = inputs, Tolerance = options.Tolerance,
            Outputs = outputNames.Select(n => OutputComparer.Compare(n, expected.First(t => t.Name == n), null, options.Tolerance)).ToList(),
        };

        OrtRunner rewRunner;
        try { rewRunner = rewritten.CreateRunner(ortOptions); }
        catch (OnnxRuntimeException e) { return Fail($"{rewritten.Description}: ONNX Runtime cannot load it: {e.Message}"); }
        IReadOnlyList<TensorValue> actual;
        var rewInputs = rewRunner.Session.InputNames;
        try
        {
            var extra = rewInputs.Where(n => !inputNames.Contains(n)).ToList();
            if (extra.Count > 0)
                return Fail($"{rewritten.Description}: has graph input(s) the original does not: {string.Join(", ", extra)}");
            var rewOutputs = outputNames.Where(n => rewRunner.Session.OutputNames.Contains(n)).ToList();
            try { actual = rewRunner.Run(inputs.Where(i => rewInputs.Contains(i.Name)), rewOutputs); }
            catch (OnnxRuntimeException e) { return Fail($"{rewritten.Description}: ONNX Runtime failed to run it: {e.Message}"); }
        }
        finally { rewRunner.Dispose(); } // before a noise-floor judgement loads sessions of its own

        // Quantized outputs (DequantizeLinear of a QuantizeLinear, or uint8/int8) are held to one quantization step.
        var steps = QuantizedOutputs.Find(QuantizedOutputs.Load(original));
        var comparisons = outputNames.Select(n =>
        {
            var e = expected.First(t => t.Name == n);
            var a = actual.FirstOrDefault(t => t.Name == n);
            var c = OutputComparer.Compare(n, e, a, options.Tolerance);
            return steps.TryGetValue(n, out var q) && a is not null ? QuantizedOutputs.Judge(c, e, a, q) : c;
        }).ToList();
        bool passed = comparisons.All(c => c.Passed);
        NoiseFloor.Judgement? floor = null;
        if (!passed && options.NoiseFloor && Verification.NoiseFloor.Applies(comparisons))
        {
            floor = Verification.NoiseFloor.Judge(original, rewritten, ortOptions, inputs, expected, comparisons, options);
            passed = floor.Passed;
        }
        return new VerificationReport
        {
            Passed = passed,
            NoiseFloor = floor,
            Outputs = comparisons,
            InputSource = source,
            Inputs = inputs,
            Tolerance = options.Tolerance,
        };
    }

    private static string Shapes(IEnumerable<TensorValue> inputs) =>
        string.Join(", ", inputs.Select(i => $"{i.Name}=[{string.Join(",", i.Dims)}]"));
}
