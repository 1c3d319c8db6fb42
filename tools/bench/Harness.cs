using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Bench;

/// <summary>A runnable configuration of one candidate on one layer: <see cref="Run"/> computes Y once.</summary>
public interface IPrepared : IDisposable
{
    void Run();
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

/// <summary>Wall-clock median/min/max and the median process CPU time per run (robust to other processes' load).</summary>
public sealed record Timing(double MedianMs, double MinMs, double MaxMs, int Runs, double CpuMedianMs);

internal static class CpuClock
{
    private struct Timespec { public long Sec, Nsec; }
    [DllImport("libc", EntryPoint = "clock_gettime")] private static extern int ClockGetTime(int clock, out Timespec ts);
    private const int ProcessCpuTime = 2;

    /// <summary>CPU time consumed by every thread of this process, in milliseconds.</summary>
    public static double ProcessMs()
    {
        if (ClockGetTime(ProcessCpuTime, out var ts) != 0) return double.NaN;
        return ts.Sec * 1e3 + ts.Nsec / 1e6;
    }
}

public static class Timer
{
    /// <summary>
    /// Warms every candidate up, then times them round-robin (one run each per round) so load from other processes
    /// hits all columns alike; stops after <paramref name="budget"/> or <paramref name="maxRounds"/>, at least <paramref name="minRounds"/>.
    /// </summary>
    public static Timing[] Measure(IReadOnlyList<IPrepared> prepared, TimeSpan budget, int minRounds, int maxRounds)
    {
        foreach (var p in prepared) { p.Run(); p.Run(); p.Run(); }
        var samples = prepared.Select(_ => new List<double>()).ToArray();
        var cpu = prepared.Select(_ => new List<double>()).ToArray();
        var total = Stopwatch.StartNew();
        for (int round = 0; round < maxRounds && (round < minRounds || total.Elapsed < budget); round++)
        {
            for (int i = 0; i < prepared.Count; i++)
            {
                double c0 = CpuClock.ProcessMs();
                long t0 = Stopwatch.GetTimestamp();
                prepared[i].Run();
                samples[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                cpu[i].Add(CpuClock.ProcessMs() - c0);
            }
        }
        return samples.Select((s, i) => new Timing(Median(s), s.Min(), s.Max(), s.Count, Median(cpu[i]))).ToArray();
    }

    private static double Median(List<double> v)
    {
        var s = v.OrderBy(x => x).ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }
}

/// <summary>The machine's FP32 FMA peak, measured with a register-only loop (no memory traffic).</summary>
public static class FmaPeak
{
    public static double GflopsPerSecond(int threads, TimeSpan duration)
    {
        var results = new double[threads];
        var ts = Enumerable.Range(0, threads).Select(i => new Thread(() => results[i] = OneThread(duration))).ToArray();
        foreach (var t in ts) t.Start();
        foreach (var t in ts) t.Join();
        return results.Sum();
    }

    private static double OneThread(TimeSpan duration)
    {
        double best = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration)
        {
            long t0 = Stopwatch.GetTimestamp();
            const long iters = 2_000_000;
            float sink = Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? Loop512(iters) : Loop256(iters);
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            int lanes = Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? 16 : 8;
            best = Math.Max(best, iters * 12.0 * lanes * 2 / s / 1e9);
            if (sink == 12345.678f) Console.Write(""); // keep the result alive
        }
        return best;
    }

    private static float Loop512(long iters)
    {
        var m = Vector512.Create(0.999999f);
        var c = Vector512.Create(1e-7f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iters; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, c); a1 = Avx512F.FusedMultiplyAdd(a1, m, c);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, c); a3 = Avx512F.FusedMultiplyAdd(a3, m, c);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, c); a5 = Avx512F.FusedMultiplyAdd(a5, m, c);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, c); a7 = Avx512F.FusedMultiplyAdd(a7, m, c);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, c); a9 = Avx512F.FusedMultiplyAdd(a9, m, c);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, c); a11 = Avx512F.FusedMultiplyAdd(a11, m, c);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static float Loop256(long iters)
    {
        var m = Vector256.Create(0.999999f);
        var c = Vector256.Create(1e-7f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iters; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, c); a1 = Fma.MultiplyAdd(a1, m, c); a2 = Fma.MultiplyAdd(a2, m, c); a3 = Fma.MultiplyAdd(a3, m, c);
            a4 = Fma.MultiplyAdd(a4, m, c); a5 = Fma.MultiplyAdd(a5, m, c); a6 = Fma.MultiplyAdd(a6, m, c); a7 = Fma.MultiplyAdd(a7, m, c);
            a8 = Fma.MultiplyAdd(a8, m, c); a9 = Fma.MultiplyAdd(a9, m, c); a10 = Fma.MultiplyAdd(a10, m, c); a11 = Fma.MultiplyAdd(a11, m, c);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
