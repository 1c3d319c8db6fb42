using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using DataType = OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType;

namespace OnnxDeconv.GraphRewrite.Runtime;

/// <summary>Options for running a model through ONNX Runtime.</summary>
public sealed record OrtRunOptions
{
    /// <summary>Verification uses ORT_DISABLE_ALL so ONNX Runtime's own fusions cannot hide a difference.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_DISABLE_ALL;
    public int IntraOpThreads { get; init; } = 1;
    /// <summary>Called on the session options before the session is created (e.g. to register custom ops).</summary>
    public Action<SessionOptions>? Configure { get; init; }
}

/// <summary>Runs a model (bytes or <see cref="ModelProto"/>) through ONNX Runtime with managed inputs and outputs.</summary>
public sealed class OrtRunner : IDisposable
{
    private readonly InferenceSession _session;
    private readonly SessionOptions _options;
    private readonly RunOptions _runOptions = new();

    public OrtRunner(byte[] modelBytes, OrtRunOptions? options = null)
    {
        // Unparseable bytes are left to ONNX Runtime's own error; parseable ones must not crash it (NativeGuard).
        ModelProto? parsed = null;
        try { parsed = ModelProto.Parser.ParseFrom(modelBytes); }
        catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or ArgumentException or InvalidOperationException) { }
        if (parsed is not null) NativeGuard.Check(parsed, "model");
        _options = CreateOptions(options ?? new OrtRunOptions());
        try { _session = new InferenceSession(modelBytes, _options); }
        catch { _options.Dispose(); _runOptions.Dispose(); throw; }
    }

    public OrtRunner(ModelProto model, OrtRunOptions? options = null) : this(ModelIO.Serialize(model), options) { }

    /// <summary>Creates a session from a file path, so ONNX Runtime resolves external data next to it.</summary>
    public OrtRunner(string modelPath, OrtRunOptions? options = null)
    {
        NativeGuard.Check(ModelIO.Load(modelPath), modelPath);
        _options = CreateOptions(options ?? new OrtRunOptions());
        try { _session = new InferenceSession(modelPath, _options); }
        catch { _options.Dispose(); _runOptions.Dispose(); throw; }
    }

    private static SessionOptions CreateOptions(OrtRunOptions options)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = options.OptimizationLevel,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = 1,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        try { options.Configure?.Invoke(so); }
        catch { so.Dispose(); throw; }
        return so;
    }

    public InferenceSession Session => _session;

    /// <summary>Runs the model; returns every graph output (or those named) as managed tensors.</summary>
    public IReadOnlyList<TensorValue> Run(IEnumerable<TensorValue> inputs, IReadOnlyList<string>? outputNames = null)
    {
        var named = inputs.Select(ToOnnx).ToList();
        var outs = outputNames ?? _session.OutputMetadata.Keys.ToList();
        using var results = _session.Run(named, outs, _runOptions);
        return results.Select(FromOnnx).ToList();
    }

    public static IReadOnlyList<TensorValue> RunOnce(ModelProto model, IEnumerable<TensorValue> inputs, OrtRunOptions? options = null)
    {
        using var r = new OrtRunner(model, options);
        return r.Run(inputs);
    }

    private static NamedOnnxValue ToOnnx(TensorValue v)
    {
        var dims = v.Dims.Select(d => checked((int)d)).ToArray();
        return v.Data switch
        {
            float[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<float>(a, dims)),
            long[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<long>(a, dims)),
            int[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<int>(a, dims)),
            double[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<double>(a, dims)),
            bool[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<bool>(a, dims)),
            byte[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<byte>(a, dims)),
            sbyte[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<sbyte>(a, dims)),
            Float16[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<Float16>(a, dims)),
            BFloat16[] a => NamedOnnxValue.CreateFromTensor(v.Name, new DenseTensor<BFloat16>(a, dims)),
            _ => throw new NotSupportedException($"input '{v.Name}': {v.Data.GetType()} is not supported"),
        };
    }

    private static TensorValue FromOnnx(DisposableNamedOnnxValue v)
    {
        switch (v.Value)
        {
            case DenseTensor<float> t: return new TensorValue(v.Name, DataType.Float, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<long> t: return new TensorValue(v.Name, DataType.Int64, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<int> t: return new TensorValue(v.Name, DataType.Int32, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<double> t: return new TensorValue(v.Name, DataType.Double, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<bool> t: return new TensorValue(v.Name, DataType.Bool, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<byte> t: return new TensorValue(v.Name, DataType.Uint8, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<sbyte> t: return new TensorValue(v.Name, DataType.Int8, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<Float16> t: return new TensorValue(v.Name, DataType.Float16, Dims(t.Dimensions), t.ToArray());
            case DenseTensor<BFloat16> t: return new TensorValue(v.Name, DataType.Bfloat16, Dims(t.Dimensions), t.ToArray());
            default: throw new NotSupportedException($"output '{v.Name}': {v.Value?.GetType().Name ?? "null"} is not supported");
        }
    }

    private static long[] Dims(ReadOnlySpan<int> d) => d.ToArray().Select(x => (long)x).ToArray();

    public void Dispose()
    {
        _session.Dispose();
        _options.Dispose();
        _runOptions.Dispose();
    }
}
