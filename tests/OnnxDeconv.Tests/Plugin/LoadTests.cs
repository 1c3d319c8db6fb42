using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// The plugin under load (issue 8): a whole model rewritten by the optimizer, run by several sessions from 8 threads
/// at once, gives bit-identical outputs for the same inputs; bad inputs fed concurrently with good ones fail with an
/// ONNX Runtime error while the good runs, and the host, carry on. (PluginConcurrencyTests covers one hand-built node.)
/// </summary>
public sealed class LoadTests
{
    private const int Threads = 8;

    private static TensorValue RandomInput(string name, long[] dims, int seed) =>
        TensorValue.Float(name, dims, PluginTestKit.RandomFloats(new Random(seed), dims.Aggregate(1L, (p, d) => p * d)));

    [Fact]
    public void UNetDecoderRewrittenForPlugin_FourSessionsEightThreads_GiveBitIdenticalOutputs()
    {
        // U-Net decoder demo: x [1,64,16,16], skip [1,32,32,32] -> y [1,32,32,32]; ConvTranspose k2 s2 with bias, Concat, 2x Conv.
        var model = ModelIO.Load(Path.Combine(RepoPaths.DemoModels, "unet_decoder_block.onnx"));
        var result = Optimizer.Run(model.Clone(), new OptimizeOptions { Target = Target.Plugin });
        Assert.Equal(0, PluginTestKit.Count(result.Model, Ops.ConvTranspose.OpType));
        Assert.Equal(1, PluginTestKit.Count(result.Model, Ops.TransposedConv.OpType));

        var inputs = Enumerable.Range(0, 3).Select(s => new[] { RandomInput("x", [1, 64, 16, 16], 100 + s), RandomInput("skip", [1, 32, 32, 32], 200 + s) }).ToArray();
        // Baselines: one session, one thread, one input at a time; checked against ORT's own ConvTranspose
        // within |a-b| <= 1e-5 + 1e-4*|b| (float32), then every concurrent run must equal them bit for bit.
        var baselines = new float[inputs.Length][];
        using (var single = new OrtRunner(result.Model, PluginTestKit.WithPlugin()))
            for (int i = 0; i < inputs.Length; i++)
            {
                baselines[i] = single.Run(inputs[i])[0].AsFloats();
                PluginTestKit.AssertClose(OrtRunner.RunOnce(model, inputs[i])[0].AsFloats(), baselines[i], $"input {i}: plugin vs ORT ConvTranspose");
            }

        var sessions = new[] { 1, 2, 1, 2 }.Select(t => new OrtRunner(result.Model, PluginTestKit.WithPlugin(t))).ToList();
        try
        {
            var mismatches = new ConcurrentBag<string>();
            int runs = 0;
            using var start = new Barrier(Threads);
            var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
            {
                var session = sessions[t % sessions.Count];
                start.SignalAndWait();
                for (int k = 0; k < 6; k++)
                {
                    int i = (t + k) % inputs.Length; // threads sharing a session interleave different inputs
                    var y = session.Run(inputs[i])[0].AsFloats();
                    Interlocked.Increment(ref runs);
                    if (!baselines[i].AsSpan().SequenceEqual(y)) mismatches.Add($"thread {t} run {k} input {i}");
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Equal(Threads * 6, runs);
            Assert.True(mismatches.IsEmpty, "outputs differ bitwise from the single-threaded run: " + string.Join("; ", mismatches));
        }
        finally { sessions.ForEach(s => s.Dispose()); }
    }

    [Fact]
    public void ContradictingInputsOnSomeThreads_FailWithErrorWhileGoodRunsStayBitIdentical()
    {
        // X's shape is left undeclared so ONNX Runtime passes whatever is fed straight to the kernel.
        var (model, good) = PluginConcurrencyTests.DcganLikeModel();
        model.Graph.Input[0] = ModelBuilder.ValueInfo("X", TensorProto.Types.DataType.Float, null);
        model.Graph.Output[0] = ModelBuilder.ValueInfo("Y", TensorProto.Types.DataType.Float, null);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model).Model;
        Assert.Equal(1, PluginTestKit.Count(rewritten, Ops.TransposedConv.OpType));

        // The kernel was built for 16 input channels and rank 4: each bad input contradicts one of those.
        var bad = new[]
        {
            (X: RandomInput("X", [2, 15, 10, 10], 1), Fragment: "channels"),
            (X: RandomInput("X", [2, 16, 10], 2), Fragment: "rank"),
            (X: RandomInput("X", [1, 17, 3, 3, 3], 3), Fragment: "rank"),
        };
        using var session = new OrtRunner(rewritten, PluginTestKit.WithPlugin(2));
        var baseline = session.Run([good])[0].AsFloats();

        var problems = new ConcurrentBag<string>();
        int goodRuns = 0, refused = 0;
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int k = 0; k < 5; k++)
            {
                if (t % 2 == 0)
                {
                    var y = session.Run([good])[0].AsFloats();
                    Interlocked.Increment(ref goodRuns);
                    if (!baseline.AsSpan().SequenceEqual(y)) problems.Add($"thread {t} run {k}: good output changed");
                    continue;
                }
                var (x, fragment) = bad[(t / 2 + k) % bad.Length];
                try
                {
                    session.Run([x]);
                    problems.Add($"thread {t} run {k}: X [{string.Join(",", x.Dims)}] was accepted");
                }
                catch (OnnxRuntimeException e)
                {
                    Interlocked.Increment(ref refused);
                    if (!e.Message.Contains(fragment, StringComparison.Ordinal) || !e.Message.Contains("TransposedConv", StringComparison.Ordinal))
                        problems.Add($"thread {t}: error for X [{string.Join(",", x.Dims)}] does not name the op and {fragment}: {e.Message}");
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.True(problems.IsEmpty, string.Join("\n", problems));
        Assert.Equal(Threads / 2 * 5, goodRuns);
        Assert.Equal(Threads / 2 * 5, refused);
        // The host and the same session keep working after all those failures.
        Assert.True(baseline.AsSpan().SequenceEqual(session.Run([good])[0].AsFloats()));
    }
}
