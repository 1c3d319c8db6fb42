using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Bench;

/// <summary>
/// Layer benchmark (issue 5): ONNX Runtime's ConvTranspose, the zero-insertion form in ONNX Runtime and our kernel, side
/// by side in one process at 1 and 2 threads.
/// Usage: bench --suite layers [--out docs/benchmarks.md] [--json F] [--layers a,b] [--threads 1,2] [--seconds S]
/// </summary>
public static class Program
{
    /// <summary>The table's columns. The plugin-in-ORT column is one more entry here once the plugin lands.</summary>
    public static List<Candidate> Candidates { get; } =
    [
        new("ort", "ONNX Runtime ConvTranspose (ORT_ENABLE_ALL)", (d, t) => new OrtPrepared(Models.ConvTranspose(d.Layer, d.W, d.B), d, t)),
        new("zero-insert", "zero-stuff + Conv (flipped kernel) in ONNX Runtime (ORT_ENABLE_ALL)", (d, t) => new OrtPrepared(Models.ZeroInsertion(d.Layer, d.W, d.B), d, t)),
        new("kernel", "DeconvKernel in-process (a 2-thread claim-by-counter pool as IParallelFor at 2 threads)", (d, t) => new KernelPrepared(d, t)),
    ];

    public static int Main(string[] args)
    {
        try { return Run(args); }
        catch (ArgumentException e) { Console.Error.WriteLine($"bench: {e.Message}"); return 3; }
    }

    private static int Run(string[] args)
    {
        string? suite = null, outPath = null, jsonPath = null;
        string[]? only = null;
        int[] threads = [1, 2];
        double seconds = 2.0;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--suite": suite = Next(); break;
                case "--out": outPath = Next(); break;
                case "--json": jsonPath = Next(); break;
                case "--layers": only = Next().Split(','); break;
                case "--threads": threads = Next().Split(',').Select(int.Parse).ToArray(); break;
                case "--candidates": var keep = Next().Split(','); Candidates.RemoveAll(c => !keep.Contains(c.Name)); break;
                case "--seconds": seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }
        if (suite != "layers") throw new ArgumentException("usage: bench --suite layers [--out F.md] [--json F.json] [--layers a,b] [--threads 1,2] [--seconds S]");

        var layers = Layer.Suite.Where(l => only is null || only.Contains(l.ShortName)).ToList();
        Console.WriteLine($"ISA {KernelIsaSelector.Active}; measuring FMA peak...");
        var peak = threads.ToDictionary(t => t, t => FmaPeak.GflopsPerSecond(t, TimeSpan.FromSeconds(1)));
        foreach (var (t, p) in peak) Console.WriteLine($"  FMA peak {t} thread(s): {p:F1} GFLOP/s");

        var results = new List<LayerResult>();
        foreach (var layer in layers)
        {
            var data = new LayerData(layer, seed: 42);
            var g = layer.Geometry;
            foreach (int t in threads)
            {
                var prepared = Candidates.Select(c => c.Prepare(data, t)).ToList();
                try
                {
                    var timings = Timer.Measure(prepared, TimeSpan.FromSeconds(seconds), minRounds: 7, maxRounds: 400);
                    double maxDiff = prepared.Count > 1 ? MaxRelDiff(prepared[^1].Output, prepared[0].Output) : double.NaN;
                    var r = new LayerResult(layer.Name, layer.ShortName, t, g.UsefulMacs,
                        Candidates.Select((c, i) => new CandidateResult(c.Name, timings[i])).ToList(),
                        DeconvKernel.WorkspaceBytes(g), 4L * g.OutputShape.Aggregate(1L, (p, v) => p * v),
                        4L * g.OutChannelsPerGroup * g.Axes.Aggregate(1L, (p, a) => p * a.Kernel * a.Input) * g.Group,
                        maxDiff, layer.Target);
                    results.Add(r);
                    Console.WriteLine($"{layer.Name,-34} {t}T " + string.Join("  ", r.Candidates.Select(c =>
                        $"{c.Name} {c.Timing.MedianMs:F3} ms (min {c.Timing.MinMs:F3}, cpu {c.Timing.CpuMedianMs:F3} = {2.0 * g.UsefulMacs / (c.Timing.CpuMedianMs * 1e6):F1} GFLOP/s)")) + $"  maxdiff {maxDiff:E1}");
                }
                finally { foreach (var p in prepared) p.Dispose(); }
            }
        }

        var report = new Report(string.Join(' ', ["dotnet run -c Release --project tools/bench --", .. args]),
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture), Machine(), KernelIsaSelector.Active.ToString(),
            peak, results);
        if (jsonPath is not null)
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        if (!Candidates.Any(c => c.Name == "ort") || !Candidates.Any(c => c.Name == "kernel") || !Candidates.Any(c => c.Name == "zero-insert")) return 0;
        string md = Markdown.Render(report, threads);
        if (outPath is not null) Markdown.WriteInto(outPath, md);
        else Console.WriteLine(md);
        return 0;
    }

    /// <summary>max |a-b| / (1e-5 + 1e-4|b|): <= 1 means within the project's float32 tolerance.</summary>
    private static double MaxRelDiff(float[] a, float[] b)
    {
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / (1e-5 + 1e-4 * Math.Abs(b[i])));
        return worst;
    }

    private static string Machine()
    {
        string cpu = "unknown CPU";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException) { }
        return $"{cpu}, {Environment.ProcessorCount} logical cores, {RuntimeInformation.FrameworkDescription}, ONNX Runtime 1.31.1";
    }
}

public sealed record CandidateResult(string Name, Timing Timing);

public sealed record LayerResult(string Name, string ShortName, int Threads, long Macs, List<CandidateResult> Candidates,
    long KernelWorkspaceBytes, long OutputBytes, long OrtColumnBufferBytes, double KernelVsOrtToleranceRatio, Target Target)
{
    public double Ms(string name) => Candidates.First(c => c.Name == name).Timing.MedianMs;
    public double Speedup => Ms("ort") / Ms("kernel");
    public double Cpu(string name) => Candidates.First(c => c.Name == name).Timing.CpuMedianMs;
    /// <summary>Speed-up from the median process CPU time per run: less sensitive to preemption by other processes.</summary>
    public double CpuSpeedup => Cpu("ort") / Cpu("kernel");
    public double ZeroInsertOverKernel => Ms("zero-insert") / Ms("kernel");
    public double Gflops(string name) => 2.0 * Macs / (Ms(name) * 1e6);
    public double KernelGflops => Gflops("kernel");
}

public sealed record Report(string Command, string Date, string Machine, string Isa, Dictionary<int, double> PeakGflops, List<LayerResult> Layers);

public static class Markdown
{
    private const string Begin = "<!-- bench:begin (generated by tools/bench; edit outside these markers) -->";
    private const string End = "<!-- bench:end -->";

    public static string Render(Report r, int[] threads)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(Begin);
        sb.AppendLine($"Produced by `{r.Command}` on {r.Date}.");
        sb.AppendLine();
        sb.AppendLine($"Machine: {r.Machine}. Kernel ISA variant: {r.Isa}. Measured FP32 FMA peak (register-only loop): " +
            string.Join(", ", r.PeakGflops.Select(p => string.Create(inv, $"{p.Value:F1} GFLOP/s at {p.Key} thread(s)"))) + ".");
        sb.AppendLine("Timing: every column warmed up (3 runs), then timed round-robin in one process (one run of each per round, so load from other processes hits all columns alike); median (min-max, runs). " +
            "ONNX Runtime sessions use ORT_ENABLE_ALL with intra_op threads = column's thread count; our kernel is called directly (at 2 threads through a small persistent pool where workers and caller claim items from a shared counter, like ONNX Runtime's intra-op pool). " +
            "Speed-up = ORT ConvTranspose time / kernel time (wall-clock medians; the CPU-time column uses the median process CPU time per run instead, which preemption by other processes affects less). GFLOP/s = 2*useful MACs / wall median.");
        foreach (int t in threads)
        {
            double peak = r.PeakGflops[t];
            sb.AppendLine();
            sb.AppendLine($"### {t} thread(s)");
            sb.AppendLine();
            sb.AppendLine("| Layer | MMACs | ORT ConvTranspose ms | zero-insert ms | kernel ms (min-max, runs) | kernel GFLOP/s | kernel % peak | ORT % peak | speed-up vs ORT | speed-up (CPU time) | zero-insert / kernel | target | met |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
            foreach (var l in r.Layers.Where(l => l.Threads == t))
            {
                var k = l.Candidates.First(c => c.Name == "kernel").Timing;
                double need = t == 1 ? l.Target.MinSpeedup1 : l.Target.MinSpeedup2;
                bool met = l.Speedup >= need;
                sb.AppendLine(string.Create(inv,
                    $"| {l.Name} | {l.Macs / 1e6:F1} | {l.Ms("ort"):F3} | {l.Ms("zero-insert"):F3} | {k.MedianMs:F3} ({k.MinMs:F3}-{k.MaxMs:F3}, {k.Runs}) | {l.KernelGflops:F1} | {100 * l.KernelGflops / peak:F0}% | {100 * l.Gflops("ort") / peak:F0}% | {l.Speedup:F2}x | {l.CpuSpeedup:F2}x | {l.ZeroInsertOverKernel:F1}x | >= {need:F2}x | {(met ? "yes" : $"**no** ({l.Speedup / need:P0} of target)")} |"));
            }
            var rows = r.Layers.Where(l => l.Threads == t).ToList();
            if (rows.Count > 0)
            {
                double geo = Math.Exp(rows.Average(l => Math.Log(l.Speedup)));
                double needGeo = t == 1 ? 1.3 : 1.5;
                sb.AppendLine();
                double geoCpu = Math.Exp(rows.Average(l => Math.Log(l.CpuSpeedup)));
                sb.AppendLine(string.Create(inv, $"Geometric mean speed-up over {rows.Count} layers at {t} thread(s): **{geo:F2}x** wall, {geoCpu:F2}x CPU time (target >= {needGeo:F1}x: {(geo >= needGeo ? "met" : "not met")})."));
                var zi = rows.Where(l => l.ZeroInsertOverKernel < 3).Select(l => string.Create(inv, $"{l.ShortName} {l.ZeroInsertOverKernel:F1}x")).ToList();
                sb.AppendLine(zi.Count == 0
                    ? "Zero insertion is >= 3x slower than the kernel on every (stride > 1) layer: met."
                    : $"Zero insertion is < 3x slower than the kernel on: {string.Join(", ", zi)}.");
            }
        }
        sb.AppendLine();
        sb.AppendLine("### Workspace and agreement");
        sb.AppendLine();
        sb.AppendLine("| Layer | kernel workspace per thread (bytes) | output (bytes) | workspace / output | ORT column buffer (Cout*K*I floats, bytes) | kernel vs ORT: max \\|a-b\\|/(1e-5+1e-4\\|b\\|) |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var l in r.Layers.GroupBy(l => l.ShortName).Select(gr => gr.First()))
            sb.AppendLine(string.Create(inv,
                $"| {l.Name} | {l.KernelWorkspaceBytes:N0} | {l.OutputBytes:N0} | {(double)l.KernelWorkspaceBytes / l.OutputBytes:F2} | {l.OrtColumnBufferBytes:N0} | {l.KernelVsOrtToleranceRatio:F2} |"));
        sb.AppendLine(End);
        return sb.ToString();
    }

    /// <summary>Replaces the generated block of <paramref name="path"/> (or creates the file), keeping hand-written text around it.</summary>
    public static void WriteInto(string path, string block)
    {
        string text = File.Exists(path) ? File.ReadAllText(path) : "";
        int b = text.IndexOf(Begin, StringComparison.Ordinal), e = text.IndexOf(End, StringComparison.Ordinal);
        string result = b >= 0 && e > b
            ? text[..b] + block.TrimEnd('\n') + text[(e + End.Length)..]
            : (text.Length > 0 ? text.TrimEnd('\n') + "\n\n" : "# Benchmarks\n\n") + block;
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, result);
        File.Move(tmp, path, overwrite: true);
    }
}
