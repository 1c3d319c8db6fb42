using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.Kernels;
using RewriteTarget = OnnxDeconv.GraphRewrite.Pipeline.Target;

namespace OnnxDeconv.Bench;

/// <summary>
/// Layer benchmark (issue 5): ONNX Runtime's ConvTranspose, the zero-insertion form in ONNX Runtime, our portable
/// lowering in ONNX Runtime, the plugin op inside ONNX Runtime and our kernel called directly, side by side in one
/// process at 1 and 2 threads. Every column's output is checked against ORT's ConvTranspose before anything is timed.
/// Usage: bench --suite layers [--out docs/benchmarks.md] [--json F] [--layers a,b] [--threads 1,2] [--seconds S] [--candidates a,b]
/// </summary>
public static class Program
{
    /// <summary>The table's columns; "ort" comes first: it is the reference every other column is checked and timed against.</summary>
    public static List<Candidate> Candidates { get; } =
    [
        new("ort", "ONNX Runtime ConvTranspose (ORT_ENABLE_ALL)", (d, t) => new OrtPrepared(Models.ConvTranspose(d.Layer, d.W, d.B), d, t)),
        new("zero-insert", "zero-stuff + Conv (flipped kernel) in ONNX Runtime (ORT_ENABLE_ALL)", (d, t) => new OrtPrepared(Models.ZeroInsertion(d.Layer, d.W, d.B), d, t)),
        new("portable", "Optimizer.Run(Target.Portable) in ONNX Runtime (ORT_ENABLE_ALL)",
            (d, t) => new OrtPrepared(Models.Rewritten(d.Layer, d.W, d.B, RewriteTarget.Portable), d, t)),
        new("plugin", "Optimizer.Run(Target.Plugin) in ONNX Runtime with RegisterOnnxDeconv (ORT_ENABLE_ALL; KernelContext_ParallelFor)",
            (d, t) => new OrtPrepared(Models.Rewritten(d.Layer, d.W, d.B, RewriteTarget.Plugin), d, t, so => so.RegisterOnnxDeconv())),
        new("kernel", "DeconvKernel in-process (a 2-thread claim-by-counter pool as IParallelFor at 2 threads)", (d, t) => new KernelPrepared(d, t)),
    ];

    /// <summary>Columns the generated markdown needs (the JSON takes any subset).</summary>
    private static readonly string[] TableColumns = ["ort", "zero-insert", "portable", "plugin", "kernel"];

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
                case "--candidates":
                    // ort stays: it is the reference for the output check and the ratios.
                    var keep = Next().Split(',');
                    Candidates.RemoveAll(c => c.Name != "ort" && !keep.Contains(c.Name));
                    break;
                case "--seconds": seconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }
        if (suite == "resize-conv") return ResizeConvSuite.Run(threads, seconds);
        if (suite != "layers") throw new ArgumentException("usage: bench --suite layers|resize-conv [--out F.md] [--json F.json] [--layers a,b] [--threads 1,2] [--seconds S]");

        string loadAtStart = LoadAverage();
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
                var prepared = new List<IPrepared>();
                try
                {
                    foreach (var c in Candidates) prepared.Add(c.Prepare(data, t));
                    // Check every column against ORT's ConvTranspose before timing: a fast wrong answer is no result.
                    foreach (var p in prepared) p.Run();
                    var agreement = Candidates.Select((c, i) => (c.Name, Ratio: MaxRelDiff(prepared[i].Output, prepared[0].Output)))
                        .Where(a => a.Name != "ort").ToDictionary(a => a.Name, a => a.Ratio);
                    var wrong = agreement.Where(a => !(a.Value <= 1)).ToList();
                    if (wrong.Count > 0)
                    {
                        Console.Error.WriteLine($"bench: {layer.Name} at {t} thread(s): output differs from ORT's ConvTranspose beyond |a-b| <= 1e-5 + 1e-4|b|: " +
                            string.Join(", ", wrong.Select(w => $"{w.Key} (max ratio {w.Value:G3})")));
                        return 2;
                    }
                    var timings = RoundRobinTimer.Measure(prepared, new TimingBudget(TimeSpan.FromSeconds(seconds), MinRounds: 7, MaxRounds: 400));
                    var r = new LayerResult(layer.Name, layer.ShortName, t, g.UsefulMacs,
                        Candidates.Select((c, i) => new CandidateResult(c.Name, timings[i])).ToList(),
                        DeconvKernel.WorkspaceBytes(g), 4L * g.OutputShape.Aggregate(1L, (p, v) => p * v),
                        4L * g.OutChannelsPerGroup * g.Axes.Aggregate(1L, (p, a) => p * a.Kernel * a.Input) * g.Group,
                        agreement, layer.Target);
                    results.Add(r);
                    Console.WriteLine($"{layer.Name,-34} {t}T " + string.Join("  ", r.Candidates.Select(c =>
                        $"{c.Name} {c.Timing.MedianMs:F3} ms (min {c.Timing.MinMs:F3}, cpu {c.Timing.CpuMedianMs:F3})")) +
                        "  agreement " + string.Join(" ", agreement.Select(a => $"{a.Key} {a.Value:F2}")));
                }
                finally { foreach (var p in prepared) p.Dispose(); }
            }
            Publish(args, outPath, jsonPath, threads, peak, loadAtStart, results, partial: true);
        }

        Publish(args, outPath, jsonPath, threads, peak, loadAtStart, results, partial: false);
        if (outPath is null && TableColumns.All(n => Candidates.Any(c => c.Name == n)))
            Console.WriteLine(Markdown.Render(NewReport(args, peak, loadAtStart, results, partial: false), threads));
        return 0;
    }

    private static Report NewReport(string[] args, Dictionary<int, double> peak, string loadAtStart, List<LayerResult> results, bool partial) =>
        new(string.Join(' ', ["dotnet run -c Release --project tools/bench --", .. args]),
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture) + (partial ? " (partial: run still in progress)" : ""),
            Machine(), KernelIsaSelector.Active.ToString(), peak, loadAtStart, LoadAverage(), results);

    /// <summary>
    /// Writes the JSON and the markdown block. Called after every layer too (partial = true), so a long run on a loaded
    /// machine leaves the finished layers on disk even if it is stopped.
    /// </summary>
    private static void Publish(string[] args, string? outPath, string? jsonPath, int[] threads, Dictionary<int, double> peak,
        string loadAtStart, List<LayerResult> results, bool partial)
    {
        var report = NewReport(args, peak, loadAtStart, results, partial);
        if (jsonPath is not null)
            AtomicWrite(jsonPath, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        if (outPath is not null && TableColumns.All(n => Candidates.Any(c => c.Name == n)))
            Markdown.WriteInto(outPath, Markdown.Render(report, threads));
    }

    private static void AtomicWrite(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>max |a-b| / (1e-5 + 1e-4|b|): <= 1 means within the project's float32 tolerance.</summary>
    internal static double MaxRelDiff(float[] a, float[] b)
    {
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / (1e-5 + 1e-4 * Math.Abs(b[i])));
        return worst;
    }

    /// <summary>The 1/5/15-minute load averages (/proc/loadavg) when the run ended: other processes' share of the cores.</summary>
    internal static string LoadAverage()
    {
        try { return string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
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

public sealed record CandidateResult(string Name, TimingStats Timing);

public sealed record LayerResult(string Name, string ShortName, int Threads, long Macs, List<CandidateResult> Candidates,
    long KernelWorkspaceBytes, long OutputBytes, long OrtColumnBufferBytes, Dictionary<string, double> AgreementWithOrt, Target Target)
{
    public TimingStats Timing(string name) => Candidates.First(c => c.Name == name).Timing;
    public double Ms(string name) => Timing(name).MedianMs;
    public double Cpu(string name) => Timing(name).CpuMedianMs;
    /// <summary>ORT ConvTranspose wall median / this column's wall median.</summary>
    public double Speedup(string name) => Ms("ort") / Ms(name);
    /// <summary>Speed-up from the median process CPU time per run: less sensitive to preemption by other processes.</summary>
    public double CpuSpeedup(string name) => Cpu("ort") / Cpu(name);
    public double ZeroInsertOver(string name) => Ms("zero-insert") / Ms(name);
    public double Gflops(string name) => 2.0 * Macs / (Ms(name) * 1e6);
}

public sealed record Report(string Command, string Date, string Machine, string Isa, Dictionary<int, double> PeakGflops,
    string LoadAverageAtStart, string LoadAverageAtEnd, List<LayerResult> Layers);

public static class Markdown
{
    private const string Begin = "<!-- bench:begin (generated by tools/bench; edit outside these markers) -->";
    private const string End = "<!-- bench:end -->";

    /// <summary>Columns judged against the issue's targets: the plugin (what users run) and the bare kernel.</summary>
    private static readonly string[] Judged = ["plugin", "kernel"];
    private static readonly string[] Shown = ["ort", "zero-insert", "portable", "plugin", "kernel"];
    private static readonly Dictionary<string, string> Titles = new()
    {
        ["ort"] = "ORT ConvTranspose", ["zero-insert"] = "zero-insert (ORT)", ["portable"] = "portable (ORT)",
        ["plugin"] = "plugin (in ORT)", ["kernel"] = "kernel (in-process)",
    };

    public static string Render(Report r, int[] threads)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine(Begin);
        sb.AppendLine($"Produced by `{r.Command}` on {r.Date}.");
        sb.AppendLine();
        sb.AppendLine($"Machine: {r.Machine}. Kernel ISA variant: {r.Isa}. Measured FP32 FMA peak (register-only loop): " +
            string.Join(", ", r.PeakGflops.Select(p => string.Create(inv, $"{p.Value:F1} GFLOP/s at {p.Key} thread(s)"))) +
            $". Load average (1/5/15 min) at the start of the run: {r.LoadAverageAtStart}; at the end: {r.LoadAverageAtEnd} (2 cores).");
        sb.AppendLine();
        sb.AppendLine("Columns: **ORT ConvTranspose** = ONNX Runtime's own op on a single-node model; **zero-insert** = zero-stuffing (Reshape/Pad/Reshape) + stride-1 Conv in ONNX Runtime; " +
            "**portable** = the model rewritten by `Optimizer.Run(Target.Portable)` in ONNX Runtime; **plugin** = the model rewritten by `Optimizer.Run(Target.Plugin)`, run in ONNX Runtime with `RegisterOnnxDeconv()` " +
            "(2 threads through the session's intra-op pool, `KernelContext_ParallelFor`); **kernel** = `DeconvKernel` called directly (2 threads through a small persistent claim-by-counter pool). " +
            "All ONNX Runtime sessions: ORT_ENABLE_ALL, intra_op threads = the row's thread count, I/O bound once. Before timing, every column's output is checked against ORT's ConvTranspose " +
            "(|a-b| <= 1e-5 + 1e-4|b|; the run aborts otherwise; worst ratios in the last table).");
        sb.AppendLine("Timing: every column warmed up (3 runs), then timed round-robin (one run of each per round, so load from other processes hits all columns alike); wall-clock median, " +
            "with (min-max, runs) for the plugin and kernel. \"x ORT\" = ORT ConvTranspose median / column median (> 1: faster than ORT); in brackets the same ratio from the median process CPU time per run, " +
            "which preemption by other processes affects less. GFLOP/s = 2 * useful MACs / wall median; % peak = of the measured FMA peak at that thread count.");
        foreach (int t in threads)
        {
            double peak = r.PeakGflops[t];
            var rows = r.Layers.Where(l => l.Threads == t).ToList();
            if (rows.Count == 0) continue;
            sb.AppendLine();
            sb.AppendLine($"### {t} thread(s)");
            sb.AppendLine();
            var head = new List<string> { "Layer", "MMACs" };
            foreach (var c in Shown)
            {
                head.Add($"{Titles[c]} ms" + (Judged.Contains(c) ? " (min-max, runs)" : ""));
                if (c != "ort") head.Add($"{c} x ORT (CPU time)");
                head.Add($"{Titles[c].Split(' ')[0]} GFLOP/s (% peak)");
            }
            head.AddRange(["zero-insert / plugin", "zero-insert / kernel", "target", "plugin met", "kernel met"]);
            sb.AppendLine("| " + string.Join(" | ", head) + " |");
            sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", head.Count - 4)) + "---|---|---|");
            foreach (var l in rows)
            {
                double need = t == 1 ? l.Target.MinSpeedup1 : l.Target.MinSpeedup2;
                var cells = new List<string> { l.Name, string.Create(inv, $"{l.Macs / 1e6:F1}") };
                foreach (var c in Shown)
                {
                    var tm = l.Timing(c);
                    cells.Add(Judged.Contains(c)
                        ? string.Create(inv, $"{tm.MedianMs:F3} ({tm.MinMs:F3}-{tm.MaxMs:F3}, {tm.Runs})")
                        : string.Create(inv, $"{tm.MedianMs:F3}"));
                    if (c != "ort") cells.Add(string.Create(inv, $"{l.Speedup(c):F2}x ({l.CpuSpeedup(c):F2}x)"));
                    cells.Add(string.Create(inv, $"{l.Gflops(c):F1} ({100 * l.Gflops(c) / peak:F0}%)"));
                }
                cells.Add(string.Create(inv, $"{l.ZeroInsertOver("plugin"):F1}x"));
                cells.Add(string.Create(inv, $"{l.ZeroInsertOver("kernel"):F1}x"));
                cells.Add(l.Target.Text.Split(':')[^1].Trim());
                foreach (var c in Judged)
                    cells.Add(l.Speedup(c) >= need ? "yes" : string.Create(inv, $"**no** ({l.Speedup(c) / need:P0} of target)"));
                sb.AppendLine("| " + string.Join(" | ", cells) + " |");
            }
            sb.AppendLine();
            double needGeo = t == 1 ? 1.3 : 1.5;
            foreach (var c in Shown.Skip(1))
            {
                double geo = Math.Exp(rows.Average(l => Math.Log(l.Speedup(c))));
                double geoCpu = Math.Exp(rows.Average(l => Math.Log(l.CpuSpeedup(c))));
                sb.AppendLine(string.Create(inv, $"- Geometric mean over {rows.Count} layers at {t} thread(s), {Titles[c]} vs ORT ConvTranspose: **{geo:F2}x** wall, {geoCpu:F2}x CPU time") +
                    (Judged.Contains(c) ? string.Create(inv, $" (target >= {needGeo:F1}x: {(geo >= needGeo ? "met" : "not met")}).") : "."));
            }
            foreach (var c in Judged)
            {
                var zi = rows.Where(l => l.ZeroInsertOver(c) < 3).Select(l => string.Create(inv, $"{l.ShortName} {l.ZeroInsertOver(c):F1}x")).ToList();
                sb.AppendLine(zi.Count == 0
                    ? $"- Zero insertion is >= 3x slower than the {c} on every (stride > 1) layer: met."
                    : $"- Zero insertion is < 3x slower than the {c} on: {string.Join(", ", zi)}.");
            }
        }
        sb.AppendLine();
        sb.AppendLine("### Workspace and agreement");
        sb.AppendLine();
        sb.AppendLine("The plugin runs the same kernel, so its workspace is the kernel's (per intra-op thread, allocated once and reused). The portable column's scratch is ONNX Runtime's own Conv workspace (not observable from outside).");
        sb.AppendLine();
        var others = Shown.Skip(1).ToList();
        sb.AppendLine("| Layer | plugin/kernel workspace per thread (bytes) | output (bytes) | workspace / output | ORT column buffer (Cout*K*I floats, bytes) | " +
            string.Join(" | ", others.Select(c => $"{c} vs ORT: max \\|a-b\\|/(1e-5+1e-4\\|b\\|)")) + " |");
        sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", 4 + others.Count)));
        foreach (var gr in r.Layers.GroupBy(l => l.ShortName))
        {
            var l = gr.First();
            sb.AppendLine(string.Create(inv,
                $"| {l.Name} | {l.KernelWorkspaceBytes:N0} | {l.OutputBytes:N0} | {(double)l.KernelWorkspaceBytes / l.OutputBytes:F2} | {l.OrtColumnBufferBytes:N0} | ") +
                string.Join(" | ", others.Select(c => string.Create(inv, $"{gr.Max(x => x.AgreementWithOrt[c]):F2}"))) + " |");
        }
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
