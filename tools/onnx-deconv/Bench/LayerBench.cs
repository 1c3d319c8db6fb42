using System.Globalization;
using System.Text.Json.Serialization;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.Kernels;

namespace OnnxDeconv.Cli.Bench;

/// <summary>A candidate's output differs from the reference: the run stops (exit code 2), a fast wrong answer is no result.</summary>
public sealed class BenchVerificationException(string message) : Exception(message);

public sealed record CandidateResult(string Name, TimingStats Timing);

public sealed record LayerResult(string Name, string ShortName, int Threads, long Macs, List<CandidateResult> Candidates,
    long KernelWorkspaceBytes, long OutputBytes, long OrtColumnBufferBytes, Dictionary<string, double> AgreementWithOrt, SpeedTarget Target,
    [property: JsonConverter(typeof(JsonStringEnumConverter<LayerKind>))] LayerKind Kind)
{
    public bool Has(string name) => Candidates.Any(c => c.Name == name);
    public TimingStats Timing(string name) => Candidates.First(c => c.Name == name).Timing;
    public double Ms(string name) => Timing(name).MedianMs;
    public double Cpu(string name) => Timing(name).CpuMedianMs;
    /// <summary>Reference (ORT on the original model) wall median / this column's wall median.</summary>
    public double Speedup(string name) => Ms("ort") / Ms(name);
    /// <summary>Speed-up from the median process CPU time per run: less sensitive to preemption by other processes.</summary>
    public double CpuSpeedup(string name) => Cpu("ort") / Cpu(name);
    public double ZeroInsertOver(string name) => Ms("zero-insert") / Ms(name);
    public double Gflops(string name) => 2.0 * Macs / (Ms(name) * 1e6);
}

/// <summary>
/// The layer suite: every candidate on every layer, at each thread count, side by side in one process. Every column's
/// output is checked against the reference column before anything is timed.
/// </summary>
public static class LayerBench
{
    /// <summary>Runs of a column in a row per round (the first is dropped: see <see cref="TimingBudget.Block"/>).</summary>
    public const int BlockRuns = 4;

    /// <param name="afterLayer">Called with the results so far after each layer (to publish partial results).</param>
    public static List<LayerResult> Run(IReadOnlyList<Layer> layers, IReadOnlyList<Candidate> candidates, int[] threads, double seconds,
        ProgressLog progress, Action<List<LayerResult>>? afterLayer = null)
    {
        var results = new List<LayerResult>();
        var inv = CultureInfo.InvariantCulture;
        for (int li = 0; li < layers.Count; li++)
        {
            var layer = layers[li];
            var data = new LayerData(layer, seed: 42);
            var cols = candidates.Where(c => c.Kinds.Contains(layer.Kind)).ToList();
            foreach (int t in threads)
            {
                progress.Step(new ProgressStep(li * threads.Length + Array.IndexOf(threads, t), layers.Count * threads.Length,
                    string.Create(inv, $"{layer.Name} at {t} thread(s)")));
                var prepared = new List<IPrepared>();
                try
                {
                    foreach (var c in cols) prepared.Add(c.Prepare(data, t));
                    foreach (var p in prepared) p.Run();
                    var agreement = cols.Select((c, i) => (c.Name, Ratio: MaxRelDiff(prepared[i].Output, prepared[0].Output)))
                        .Where(a => a.Name != "ort").ToDictionary(a => a.Name, a => a.Ratio);
                    var wrong = agreement.Where(a => !(a.Value <= 1)).ToList();
                    if (wrong.Count > 0)
                        throw new BenchVerificationException($"{layer.Name} at {t} thread(s): output differs from ONNX Runtime's original model beyond |a-b| <= 1e-5 + 1e-4|b|: " +
                            string.Join(", ", wrong.Select(w => string.Create(inv, $"{w.Key} (max ratio {w.Value:G3})"))));
                    var timings = RoundRobinTimer.Measure(prepared, new TimingBudget(TimeSpan.FromSeconds(seconds), MinRounds: 7, MaxRounds: 400, Block: BlockRuns));
                    var g = layer.Geometry;
                    bool convT = layer.Kind == LayerKind.ConvTranspose;
                    var r = new LayerResult(layer.Name, layer.ShortName, t, layer.Macs,
                        cols.Select((c, i) => new CandidateResult(c.Name, timings[i])).ToList(),
                        convT ? DeconvKernel.WorkspaceBytes(g) : 0, 4L * g.OutputShape.Aggregate(1L, (p, v) => p * v),
                        convT ? 4L * g.OutChannelsPerGroup * g.Axes.Aggregate(1L, (p, a) => p * a.Kernel * a.Input) * g.Group : 0,
                        agreement, layer.Target, layer.Kind);
                    results.Add(r);
                    progress.Line(string.Create(inv, $"[{li + 1}/{layers.Count}] {layer.Name,-36} {t}T ") + string.Join("  ", r.Candidates.Select(c =>
                        string.Create(inv, $"{c.Name} {c.Timing.MedianMs:F3} ms"))));
                }
                finally { foreach (var p in prepared) p.Dispose(); }
            }
            afterLayer?.Invoke(results);
        }
        progress.Erase();
        return results;
    }

    /// <summary>The layers of <paramref name="suite"/> named in <paramref name="only"/> (short names), all when null; unknown names are a usage error.</summary>
    public static List<Layer> Select(string[]? only, IReadOnlyList<Layer> suite)
    {
        if (only is null) return suite.ToList();
        var unknown = only.Where(n => suite.All(l => l.ShortName != n)).ToList();
        if (unknown.Count > 0)
            throw new Commands.UsageException($"--layers: unknown layer(s) {string.Join(", ", unknown)}; known: {string.Join(", ", suite.Select(l => l.ShortName))}");
        return suite.Where(l => only.Contains(l.ShortName)).ToList();
    }

    /// <summary>
    /// "ort" always stays: it is the reference for the output check and the ratios. "plugin-so" needs the published
    /// library (<see cref="PublishedPlugin.Resolve"/> first): by default it is left out, with <paramref name="note"/>
    /// saying why, when there is none; asked for by name without one, it is a usage error.
    /// </summary>
    public static List<Candidate> SelectCandidates(string[]? keep, out string? note)
    {
        note = null;
        bool haveSo = PublishedPlugin.Path is not null;
        if (keep is null)
        {
            if (!haveSo) note = $"{Candidate.PluginSo} column left out: {PublishedPlugin.Missing}";
            return Candidate.All.Where(c => haveSo || c.Name != Candidate.PluginSo).ToList();
        }
        var unknown = keep.Where(n => Candidate.All.All(c => c.Name != n)).ToList();
        if (unknown.Count > 0)
            throw new Commands.UsageException($"--candidates: unknown candidate(s) {string.Join(", ", unknown)}; known: {string.Join(", ", Candidate.All.Select(c => c.Name))}");
        if (keep.Contains(Candidate.PluginSo) && !haveSo)
            throw new Commands.UsageException($"--candidates {Candidate.PluginSo}: {PublishedPlugin.Missing}");
        return Candidate.All.Where(c => c.Name == "ort" || keep.Contains(c.Name)).ToList();
    }

    /// <summary>max |a-b| / (1e-5 + 1e-4|b|): <= 1 means within the project's float32 tolerance.</summary>
    public static double MaxRelDiff(float[] a, float[] b)
    {
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / (1e-5 + 1e-4 * Math.Abs(b[i])));
        return worst;
    }
}
