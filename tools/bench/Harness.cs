using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Bench;

/// <summary>A runnable configuration of one candidate on one layer: <see cref="Run"/> computes Y once.</summary>
public interface IPrepared : ITimedRun
{
    float[] Output { get; }
}

/// <summary>
/// A column of the table: something that computes the layer. New candidates (e.g. the plugin op inside ONNX Runtime)
/// are added to <see cref="Program.Candidates"/> and get their own column.
/// </summary>
public sealed record Candidate(string Name, string Description, Func<LayerData, int, IPrepared> Prepare);

/// <summary>A layer's random inputs, shared by every candidate.</summary>
public sealed class LayerData
{
    public Layer Layer { get; }
    public float[] X { get; }
    public float[] W { get; }
    public float[] B { get; }

    public LayerData(Layer layer, int seed)
    {
        Layer = layer;
        var g = layer.Geometry;
        var rng = new Random(seed);
        X = Fill(rng, g.InputShape.Aggregate(1L, (p, v) => p * v), 1f);
        W = Fill(rng, g.WeightShape.Aggregate(1L, (p, v) => p * v), 0.05f);
        B = Fill(rng, g.OutChannels, 0.1f);
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
    private readonly string[] _inNames = [Models.X], _outNames = [Models.Y];
    private readonly OrtValue[] _ins, _outs;
    public float[] Output { get; }

    public OrtPrepared(byte[] model, LayerData d, int threads, Action<SessionOptions>? configure = null)
    {
        var g = d.Layer.Geometry;
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
        Output = new float[g.OutputShape.Aggregate(1L, (p, v) => p * v)];
        _x = OrtValue.CreateTensorValueFromMemory(d.X, g.InputShape);
        _y = OrtValue.CreateTensorValueFromMemory(Output, g.OutputShape);
        _ins = [_x];
        _outs = [_y];
    }

    public void Run() => _session.Run(_runOptions, _inNames, _ins, _outNames, _outs);

    public void Dispose()
    {
        _x.Dispose(); _y.Dispose(); _session.Dispose(); _options.Dispose(); _runOptions.Dispose();
    }
}

/// <summary>Our kernel called directly in-process; 2 threads through <see cref="ParallelFor"/> (a 2-thread pool).</summary>
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
/// A small intra-op pool like ONNX Runtime's: a persistent worker plus the calling thread claim items one at a time
/// from the call's counter, and the caller waits for the items, not for the worker: a worker the OS has not scheduled
/// yet costs nothing once the caller has done everything. The worker blocks between calls (ManualResetEventSlim: brief
/// spin, then sleep) so it does not steal CPU from the other columns.
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

    private readonly Thread _worker;
    private readonly ManualResetEventSlim _wake = new(false);
    private volatile Batch? _current;
    private volatile bool _stop;

    public ParallelFor(int threads)
    {
        if (threads != 2) throw new ArgumentOutOfRangeException(nameof(threads), threads, "the bench pool runs exactly 2 threads");
        _worker = new Thread(Work) { IsBackground = true, Name = "bench-pool" };
        _worker.Start();
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
            _wake.Reset();
            if (_current is { } b) Drain(b);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _wake.Set();
        _worker.Join();
        _wake.Dispose();
    }
}
