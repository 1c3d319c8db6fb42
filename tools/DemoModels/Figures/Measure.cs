using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.DemoModels.Figures;

/// <summary>
/// Times the three standard-op forms of the DCGAN layer (<see cref="LayerVariants"/>) in ONNX Runtime on this machine:
/// one intra-op thread, ORT_ENABLE_ALL (what a user runs), minimum and median over repeated runs. Prints markdown.
/// </summary>
public static class Measure
{
    public static string Run(int repeats = 60, ulong seed = DemoModelCatalog.Seed)
    {
        var g = FigureCatalog.DcganLayer();
        var rng = new SplitMix64(seed);
        float bound = (float)Math.Sqrt(6.0 / (g.InChannels * 4));
        var w = rng.Uniform(g.WeightShape.Aggregate(1L, (p, d) => p * d), bound);
        var bias = rng.Uniform(g.OutChannels, 0.1f);
        var x = TensorValue.Float(LayerVariants.Input, g.InputShape, rng.Uniform(g.InputShape.Aggregate(1L, (p, d) => p * d), 1.7f));
        var variants = new (string Name, OnnxDeconv.GraphRewrite.Onnx.ModelProto Model)[]
        {
            ("ConvTranspose node (GEMM + col2im)", LayerVariants.ConvTranspose(g, w, bias)),
            ("Zero insertion (Reshape-Pad-Reshape) + Conv", LayerVariants.ZeroInsertion(g, w, bias)),
            ("Polyphase Conv + DepthToSpace + Slice", LayerVariants.PolyphaseConv(g, w, bias)),
        };
        var options = new OrtRunOptions { OptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpThreads = 1 };
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(inv, $"DCGAN layer 256->128 k4 s2 p1 8x8, ONNX Runtime {OrtEnv.Instance().GetVersionString()}, ORT_ENABLE_ALL, 1 thread, {repeats} runs, {Environment.ProcessorCount} cores\n\n");
        sb.Append("| Form | min ms | median ms | useful GFLOP/s at min | max abs diff vs ConvTranspose |\n|---|---:|---:|---:|---:|\n");
        float[]? baseline = null;
        foreach (var (name, model) in variants)
        {
            using var runner = new OrtRunner(model, options);
            float[] y = runner.Run([x])[0].AsFloats();
            for (int i = 0; i < 5; i++) runner.Run([x]);
            var times = new double[repeats];
            for (int i = 0; i < repeats; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                runner.Run([x]);
                times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            Array.Sort(times);
            baseline ??= y;
            double diff = y.Zip(baseline, (a, b) => Math.Abs((double)a - b)).Max();
            double gflops = 2.0 * g.UsefulMacs / (times[0] * 1e6);
            sb.Append(inv, $"| {name} | {times[0]:0.000} | {times[repeats / 2]:0.000} | {gflops:0.0} | {diff:0.0e+0} |\n");
        }
        return sb.ToString();
    }
}
