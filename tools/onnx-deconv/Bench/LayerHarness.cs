using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.Kernels;
using RewriteTarget = OnnxDeconv.GraphRewrite.Pipeline.Target;

namespace OnnxDeconv.Cli.Bench;

/// <summary>A runnable configuration of one candidate on one layer: <see cref="ITimedRun.Run"/> computes Y once.</summary>
public interface IPrepared : ITimedRun
{
    float[] Output { get; }
}

/// <summary>A column of the layer tables: something that computes the layer, for the layer kinds it applies to.</summary>
public sealed record Candidate(string Name, string Description, LayerKind[] Kinds, Func<LayerData, int, IPrepared> Prepare)
{
    /// <summary>The plugin through the published .so (<see cref="PublishedPlugin"/>); left out when none is found.</summary>
    public const string PluginSo = "plugin-so";

    /// <summary>
    /// The suite's columns; "ort" comes first: it is the reference (ONNX Runtime on the layer's original model) every
    /// other column is checked and timed against.
    /// </summary>
    public static IReadOnlyList<Candidate> All { get; } =
    [
        new("ort", "ONNX Runtime on the original model: ConvTranspose, or Resize+Conv (ORT_ENABLE_ALL)", [LayerKind.ConvTranspose, LayerKind.ResizeConv],
            (d, t) => new OrtPrepared(GraphRewrite.IO.ModelIO.Serialize(LayerModels.Reference(d.Layer, d.W, d.B)), d, t)),
        new("zero-insert", "zero-stuff + Conv (flipped kernel) in ONNX Runtime (ORT_ENABLE_ALL)", [LayerKind.ConvTranspose],
            (d, t) => new OrtPrepared(LayerModels.ZeroInsertion(d.Layer, d.W, d.B), d, t)),
        new("portable", "Optimizer.Run(Target.Portable) in ONNX Runtime (ORT_ENABLE_ALL)", [LayerKind.ConvTranspose, LayerKind.ResizeConv],
            (d, t) => new OrtPrepared(LayerModels.Rewritten(d.Layer, d.W, d.B, RewriteTarget.Portable), d, t)),
        new("plugin", "Optimizer.Run(Target.Plugin) in ONNX Runtime with RegisterOnnxDeconv (ORT_ENABLE_ALL; KernelContext_ParallelFor)",
            [LayerKind.ConvTranspose, LayerKind.ResizeConv],
            (d, t) => new OrtPrepared(LayerModels.Rewritten(d.Layer, d.W, d.B, RewriteTarget.Plugin), d, t, so => so.RegisterOnnxDeconv())),
        new(PluginSo, "the same rewritten model in ONNX Runtime with the published libonnxdeconv.so registered (RegisterCustomOpLibrary: what Python/C/C++ hosts run)",
            [LayerKind.ConvTranspose, LayerKind.ResizeConv],
            (d, t) => new OrtPrepared(LayerModels.Rewritten(d.Layer, d.W, d.B, RewriteTarget.Plugin), d, t,
                so => so.RegisterCustomOpLibrary(PublishedPlugin.Path ?? throw new InvalidOperationException(PublishedPlugin.Missing)))),
        new("kernel", "DeconvKernel in-process (a claim-by-counter pool as IParallelFor above 1 thread)", [LayerKind.ConvTranspose],
            (d, t) => new KernelPrepared(d, t)),
    ];
}

/// <summary>A layer's random inputs, shared by every candidate (weights in the reference model's layout).</summary>
public sealed class LayerData
{
    public Layer Layer { get; }
    public float[] X { get; }
    public float[] W { get; }
    public float[] B { get; }

    public LayerData(Layer layer, int seed)
    {
        Layer = layer;
        var rng = new Random(seed);
        X = Fill(rng, layer.InputShape.Aggregate(1L, (p, v) => p * v), 1f);
        W = Fill(rng, layer.ReferenceWeightShape.Aggregate(1L, (p, v) => p * v), 0.05f);
        B = Fill(rng, layer.OutputShape[1], 0.1f);
    }

    private static float[] Fill(Random rng, long n, float scale)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }
}

/// <summary>
/// An ONNX Runtime session with pre-bound input/output buffers (ORT_ENABLE_ALL, as a user would run it);
/// <paramref name="configure"/> adjusts the options before the session is created (e.g. registers the plugin op).
/// </summary>
public sealed class OrtPrepared : IPrepared
{
    private readonly InferenceSession _session;
    private readonly SessionOptions _options;
    private readonly RunOptions _runOptions = new();
    private readonly OrtValue _x, _y;
    private readonly string[] _inNames = [LayerModels.X], _outNames = [LayerModels.Y];
    private readonly OrtValue[] _ins, _outs;
    public float[] Output { get; }

    public OrtPrepared(byte[] model, LayerData d, int threads, Action<SessionOptions>? configure = null)
    {
        var layer = d.Layer;
        _options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        configure?.Invoke(_options);
        _session = new InferenceSession(model, _options);
        Output = new float[layer.OutputShape.Aggregate(1L, (p, v) => p * v)];
        _x = OrtValue.CreateTensorValueFromMemory(d.X, layer.InputShape);
        _y = OrtValue.CreateTensorValueFromMemory(Output, layer.OutputShape);
        _ins = [_x];
        _outs = [_y];
    }

    public void Run() => _session.Run(_runOptions, _inNames, _ins, _outNames, _outs);

    public void Dispose()
    {
        _x.Dispose(); _y.Dispose(); _session.Dispose(); _options.Dispose(); _runOptions.Dispose();
    }
}

/// <summary>Our kernel called directly in-process; above 1 thread through <see cref="ParallelFor"/>.</summary>
public sealed class KernelPrepared : IPrepared
{
    private readonly Geometry.ConvTransposeGeometry _g;
    private readonly LayerData _d;
    private readonly float[] _packed;
    private readonly IParallelFor _parallel;
    public float[] Output { get; }

    public KernelPrepared(LayerData d, int threads)
    {
        _d = d;
        _g = d.Layer.Geometry;
        _packed = new float[DeconvKernel.PackedWeightLength(_g)];
        DeconvKernel.PackWeights(_g, d.W, _packed);
        Output = new float[_g.OutputShape.Aggregate(1L, (p, v) => p * v)];
        _parallel = threads == 1 ? SerialFor.Instance : new ParallelFor(threads);
    }

    public void Run() => DeconvKernel.Run(_g, Epilogue.None, _d.X, _packed, _d.B, Output, _parallel);
    public void Dispose() { (_parallel as IDisposable)?.Dispose(); }
}

/// <summary>
/// A small intra-op pool like ONNX Runtime's: persistent workers plus the calling thread claim items one at a time
/// from the call's counter, and the caller waits for the items, not for the workers: a worker the OS has not scheduled
/// yet costs nothing once the caller has done everything. Workers block between calls (ManualResetEventSlim: brief
/// spin, then sleep) so they do not steal CPU from the other columns.
/// </summary>
public sealed class ParallelFor : IParallelFor, IDisposable
{
    // One small object per call: a late worker that picks up an old batch finds it exhausted. (Bench harness only;
    // the kernel itself allocates nothing per call.)
    private sealed class Batch(Action<int> body, int count)
    {
        public readonly Action<int> Body = body;
        public readonly int Count = count;
        public int Next, Done;
    }

    private readonly Thread[] _workers;
    private readonly ManualResetEventSlim _wake = new(false);
    private volatile Batch? _current;
    private volatile bool _stop;

    public ParallelFor(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 2);
        _workers = Enumerable.Range(1, threads - 1).Select(i => new Thread(Work) { IsBackground = true, Name = $"bench-pool-{i}" }).ToArray();
        foreach (var w in _workers) w.Start();
    }

    public void For(int count, Action<int> body)
    {
        var batch = new Batch(body, count);
        _current = batch;
        _wake.Set();
        Drain(batch);
        var spin = new SpinWait();
        while (Volatile.Read(ref batch.Done) < count) spin.SpinOnce(sleep1Threshold: -1);
        _current = null;
        _wake.Reset();
    }

    private static void Drain(Batch b)
    {
        for (int i; (i = Interlocked.Increment(ref b.Next) - 1) < b.Count;)
        {
            b.Body(i);
            Interlocked.Increment(ref b.Done);
        }
    }

    private void Work()
    {
        while (true)
        {
            _wake.Wait();
            if (_stop) return;
            if (_current is { } b) Drain(b);
            else Thread.Yield();
        }
    }

    public void Dispose()
    {
        _stop = true;
        _wake.Set();
        foreach (var w in _workers) w.Join();
        _wake.Dispose();
    }
}
