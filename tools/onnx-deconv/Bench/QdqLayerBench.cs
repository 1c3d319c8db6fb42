using System.Globalization;
using System.Text.Json;
using OnnxDeconv.DemoModels.Qdq;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.Cli.Bench;

/// <summary>One QDQ layer timed: the original QDQ model (fp32 ConvTranspose between DQ and Q) against its portable rewrite (QLinearConv + interleave).</summary>
public sealed record QdqLayerResult(string Name, string ShortName, int Threads, long Channels, TimingStats Original, TimingStats Rewritten, long StepsOff, long Elements)
{
    public double Speedup => Original.MedianMs / Rewritten.MedianMs;
    public double CpuSpeedup => Original.CpuMedianMs / Rewritten.CpuMedianMs;
    /// <summary>Issue 15's wide layers: >= 256 input channels.</summary>
    public bool Wide => Channels >= 256;
}

/// <summary>
/// The QDQ layer suite (<c>bench --suite qdq</c>): the layer suite's group-1 ConvTranspose layers, each quantized as ONNX
/// Runtime's static quantizer writes it (<see cref="StaticQdqQuantizer"/>, calibrated on the layer's seeded input and
/// three more), then rewritten by <c>Target.Portable</c>. Both run in one process, ORT_ENABLE_ALL, round-robin in blocks
/// (<see cref="LayerBench.BlockRuns"/>), after the rewritten output is checked within one quantization step of the original.
/// </summary>
public static class QdqLayerBench
{
    public static IReadOnlyList<Layer> Suite { get; } =
        Layer.Suite.Where(l => l.Kind == LayerKind.ConvTranspose && l.Attributes.Group == 1).ToList();

    public static List<QdqLayerResult> Run(IReadOnlyList<Layer> layers, int[] threads, double seconds, TextWriter progress)
    {
        var results = new List<QdqLayerResult>();
        var inv = CultureInfo.InvariantCulture;
        for (int li = 0; li < layers.Count; li++)
        {
            var layer = layers[li];
            var data = new LayerData(layer, seed: 42);
            var fp32 = LayerModels.Reference(layer, data.W, data.B);
            var calibration = new[] { 42, 43, 44, 45 }.Select(seed => (IReadOnlyList<TensorValue>)
                [TensorValue.Float(LayerModels.X, layer.InputShape, new LayerData(layer, seed).X)]).ToList();
            var qdq = StaticQdqQuantizer.Quantize(fp32, calibration);
            var rewrite = Optimizer.Run(qdq, new OptimizeOptions { Target = Target.Portable });
            if (rewrite.Nodes.FirstOrDefault(n => !n.Rewritten) is { } skipped)
                throw new InvalidOperationException($"{layer.Name}: the QDQ site was left alone: {skipped.Reason}");
            byte[] original = ModelIO.Serialize(qdq), rewritten = ModelIO.Serialize(rewrite.Model);
            var step = QuantizedOutputs.Find(qdq)[LayerModels.Y];
            foreach (int t in threads)
            {
                using var a = new OrtPrepared(original, data, t);
                using var b = new OrtPrepared(rewritten, data, t);
                a.Run(); b.Run();
                var e = TensorValue.Float(LayerModels.Y, layer.OutputShape, a.Output);
                var r = TensorValue.Float(LayerModels.Y, layer.OutputShape, b.Output);
                var c = QuantizedOutputs.Judge(OutputComparer.Compare(LayerModels.Y, e, r, Tolerance.Default), e, r, step);
                if (!c.Passed)
                    throw new BenchVerificationException($"{layer.Name} (QDQ) at {t} thread(s): rewritten output breaks {c.QuantizedRule}: {c.Describe()}");
                var timings = RoundRobinTimer.Measure([a, b], new TimingBudget(TimeSpan.FromSeconds(seconds), MinRounds: 7, MaxRounds: 400, Block: LayerBench.BlockRuns));
                var res = new QdqLayerResult(layer.Name, layer.ShortName, t, layer.InputShape[1], timings[0], timings[1], c.StepsOff ?? 0, c.Elements);
                results.Add(res);
                progress.WriteLine(string.Create(inv, $"[{li + 1}/{layers.Count}] QDQ {layer.Name,-36} {t}T original {res.Original.MedianMs:F3} ms  rewritten {res.Rewritten.MedianMs:F3} ms  {res.Speedup:F2}x"));
            }
        }
        return results;
    }

    public static double Geomean(IEnumerable<double> v)
    {
        var list = v.ToList();
        return list.Count == 0 ? double.NaN : Math.Exp(list.Average(Math.Log));
    }

    /// <summary>The table on stdout (one row per layer and thread count, geomean per thread count), optional JSON.</summary>
    public static int Report(TextWriter stdout, List<QdqLayerResult> results, string? json, string commandLine)
    {
        var inv = CultureInfo.InvariantCulture;
        var t = Commands.CliSupport.NewTable("QDQ layer", "Threads", "original QDQ ms", "rewritten ms", "x original", "x (CPU time)", "one step off");
        foreach (var r in results)
            Commands.CliSupport.Row(t, r.Name, r.Threads.ToString(inv), r.Original.MedianMs.ToString("F3", inv), r.Rewritten.MedianMs.ToString("F3", inv),
                r.Speedup.ToString("F2", inv) + "x", r.CpuSpeedup.ToString("F2", inv) + "x", $"{r.StepsOff}/{r.Elements}");
        Commands.CliSupport.Console(stdout).Write(t);
        foreach (var g in results.GroupBy(r => r.Threads))
            stdout.WriteLine(string.Create(inv, $"{g.Key} thread(s): geomean {Geomean(g.Select(r => r.Speedup)):F2}x over {g.Count()} layers; wide (>= 256 channels) {string.Join(", ", g.Where(r => r.Wide).Select(r => $"{r.ShortName} {r.Speedup:F2}x"))}"));
        stdout.WriteLine("rewritten vs original QDQ model, ORT_ENABLE_ALL, same process, round-robin blocks; outputs checked within one quantization step first");
        if (json is not null)
        {
            BenchEnvironment.AtomicWrite(json, JsonSerializer.Serialize(new
            {
                command = commandLine, date = BenchEnvironment.Now(), machine = BenchEnvironment.Machine(), load = BenchEnvironment.LoadAverage(),
                layers = results.Select(r => new { r.Name, r.ShortName, r.Threads, originalMs = r.Original.MedianMs, rewrittenMs = r.Rewritten.MedianMs, r.Speedup, r.CpuSpeedup, r.StepsOff, r.Elements }),
            }, new JsonSerializerOptions { WriteIndented = true }));
            stdout.WriteLine($"wrote JSON: {json}");
        }
        return ExitCodes.Ok;
    }
}
