using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxDeconv.GraphRewrite.Runtime;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Timing;

/// <summary>How a timed session is configured: as a user would run the model (ORT_ENABLE_ALL by default).</summary>
public sealed record TimedSessionOptions
{
    public int IntraOpThreads { get; init; } = 1;
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;
    /// <summary>Adjusts the options before the session is created (e.g. registers the plugin op).</summary>
    public Action<SessionOptions>? Configure { get; init; }
}

/// <summary>
/// An ONNX Runtime session ready to be timed: inputs are bound once (pinned managed memory, no copy per run) and outputs
/// are bound to CPU memory that ONNX Runtime allocates, so a run measures what a user's inference costs.
/// </summary>
public sealed class OrtTimedSession : ITimedRun
{
    private readonly SessionOptions _options;
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly OrtIoBinding _binding;
    private readonly List<OrtValue> _inputs = [];

    /// <param name="model">Serialized model, or null when <paramref name="modelPath"/> is given.</param>
    /// <param name="modelPath">Model file (external data resolved next to it), used when <paramref name="model"/> is null.</param>
    private OrtTimedSession(byte[]? model, string? modelPath, IReadOnlyList<TensorValue> inputs, TimedSessionOptions? options)
    {
        options ??= new TimedSessionOptions();
        _options = new SessionOptions
        {
            GraphOptimizationLevel = options.OptimizationLevel,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        try
        {
            options.Configure?.Invoke(_options);
            _session = model is not null ? new InferenceSession(model, _options) : new InferenceSession(modelPath!, _options);
            _binding = _session.CreateIoBinding();
            foreach (var v in inputs)
            {
                var value = ToOrtValue(v);
                _inputs.Add(value);
                _binding.BindInput(v.Name, value);
            }
            foreach (var name in _session.OutputMetadata.Keys)
                _binding.BindOutputToDevice(name, OrtMemoryInfo.DefaultInstance);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static OrtTimedSession FromBytes(byte[] model, IReadOnlyList<TensorValue> inputs, TimedSessionOptions? options = null) =>
        new(model, null, inputs, options);

    public static OrtTimedSession FromFile(string modelPath, IReadOnlyList<TensorValue> inputs, TimedSessionOptions? options = null) =>
        new(null, modelPath, inputs, options);

    public void Run() => _session.RunWithBinding(_runOptions, _binding);

    /// <summary>With SessionOptions.EnableProfiling set (in Configure): ends the profile and returns the trace file's path.</summary>
    public string EndProfiling() => _session.EndProfiling();

    /// <summary>Runs once and returns every graph output as a managed tensor (to check a candidate before timing it).</summary>
    public IReadOnlyList<TensorValue> RunAndRead()
    {
        Run();
        var names = _session.OutputMetadata.Keys.ToList();
        using var values = _binding.GetOutputValues();
        return values.Select((v, i) => FromOrtValue(names[i], v)).ToList();
    }

    private static OrtValue ToOrtValue(TensorValue v) => v.Data switch
    {
        float[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        long[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        int[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        double[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        bool[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        byte[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        sbyte[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        Float16[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        BFloat16[] a => OrtValue.CreateTensorValueFromMemory(a, v.Dims),
        _ => throw new NotSupportedException($"input '{v.Name}': {v.Data.GetType().Name} is not supported"),
    };

    private static TensorValue FromOrtValue(string name, OrtValue v)
    {
        var info = v.GetTensorTypeAndShape();
        var dims = info.Shape;
        return info.ElementDataType switch
        {
            TensorElementType.Float => new TensorValue(name, DataType.Float, dims, v.GetTensorDataAsSpan<float>().ToArray()),
            TensorElementType.Int64 => new TensorValue(name, DataType.Int64, dims, v.GetTensorDataAsSpan<long>().ToArray()),
            TensorElementType.Int32 => new TensorValue(name, DataType.Int32, dims, v.GetTensorDataAsSpan<int>().ToArray()),
            TensorElementType.Double => new TensorValue(name, DataType.Double, dims, v.GetTensorDataAsSpan<double>().ToArray()),
            TensorElementType.Bool => new TensorValue(name, DataType.Bool, dims, v.GetTensorDataAsSpan<bool>().ToArray()),
            TensorElementType.UInt8 => new TensorValue(name, DataType.Uint8, dims, v.GetTensorDataAsSpan<byte>().ToArray()),
            TensorElementType.Int8 => new TensorValue(name, DataType.Int8, dims, v.GetTensorDataAsSpan<sbyte>().ToArray()),
            TensorElementType.Float16 => new TensorValue(name, DataType.Float16, dims, v.GetTensorDataAsSpan<Float16>().ToArray()),
            TensorElementType.BFloat16 => new TensorValue(name, DataType.Bfloat16, dims, v.GetTensorDataAsSpan<BFloat16>().ToArray()),
            var t => throw new NotSupportedException($"output '{name}': element type {t} is not supported"),
        };
    }

    public void Dispose()
    {
        _binding?.Dispose();
        foreach (var v in _inputs) v.Dispose();
        _session?.Dispose();
        _options.Dispose();
        _runOptions.Dispose();
    }
}
