using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.Cli.Commands;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.Cli.Bench;

/// <summary>
/// A rewrite the bench times against the original model. The list is open: a target is a name and a function from
/// the original model to the optimizer's result (e.g. a future "auto" is one more entry).
/// </summary>
public sealed record BenchTarget(string Name, Func<ModelProto, IReadOnlyDictionary<string, long[]>, OptimizeResult> Rewrite)
{
    public static IReadOnlyList<BenchTarget> Known { get; } =
    [
        // Through CliHooks (not Optimizer.Run directly) so tests can substitute a broken rewrite.
        new("portable", (m, _) => CliHooks.Optimizer(m, new OptimizeOptions { Target = Target.Portable })),
        new("plugin", (m, _) => CliHooks.Optimizer(m, new OptimizeOptions { Target = Target.Plugin })),
        // Resize/Upsample+Conv and zero insertion+Conv as the plain ConvTranspose they compute (ConvTransposes stay).
        new("convtranspose", (m, _) => CliHooks.Optimizer(m, new OptimizeOptions { Target = Target.ConvTranspose })),
        // What `optimize` does by default: measured per node, with the user's decision cache (as optimize uses it).
        new("auto", (m, shapes) => CliHooks.Optimizer(m, new OptimizeOptions
        {
            Target = Target.Auto, Shapes = shapes, Timer = CliHooks.Timer, Cache = new DecisionCache(CliHooks.CacheDirectory),
        })),
    ];

    public static List<BenchTarget> Parse(string? csv)
    {
        if (csv is null) return Known.ToList();
        var names = csv.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (names.Length == 0) throw new Commands.UsageException("--targets: give at least one target");
        var unknown = names.Where(n => Known.All(k => k.Name != n)).ToList();
        if (unknown.Count > 0)
            throw new Commands.UsageException($"--targets: unknown target(s) {string.Join(", ", unknown)}; known: {string.Join(", ", Known.Select(k => k.Name))}");
        return names.Distinct().Select(n => Known.First(k => k.Name == n)).ToList();
    }
}

/// <summary>One node's kernel time in ONNX Runtime's profiler (median over the profiled runs).</summary>
public sealed record NodeTime(string Node, string OpType, double MedianMs, int Runs);

/// <summary>The original model or one rewrite at one thread count: whole-model timing and per-node profile.</summary>
public sealed record VariantResult(string Name, TimingStats Timing, double Speedup, double CpuSpeedup, List<NodeTime> Nodes);

public sealed record ThreadResult(int Threads, List<VariantResult> Variants);

/// <summary>What a target's rewrite did to the model; <see cref="Note"/> says why it was not timed (nothing rewritten).</summary>
public sealed record TargetSummary(string Name, int NodesRewritten, int NodesSkipped, string? Note);

public sealed record ModelBenchResult(string Model, string Inputs, List<TargetSummary> Targets, List<ThreadResult> Runs)
{
    public VariantResult? Find(int threads, string name) => Runs.FirstOrDefault(r => r.Threads == threads)?.Variants.FirstOrDefault(v => v.Name == name);
}

/// <summary>
/// Times a model and its rewrites side by side (round-robin, after warm-up) in ONNX Runtime at each thread count, after
/// checking every rewrite's outputs against the original's on the same random inputs; then profiles each with ONNX
/// Runtime's profiler for per-node kernel times.
/// </summary>
public static class ModelBench
{
    public const string Original = "original";

    /// <summary>Suffix of a variant timed through the published libonnxdeconv.so instead of in-process registration.</summary>
    public const string SoSuffix = "-so";

    public sealed record Options(IReadOnlyDictionary<string, long[]> Shapes, IReadOnlyList<BenchTarget> Targets, int[] Threads, double Seconds,
        int Seed = 0, int ProfileRuns = 10);

    public static ModelBenchResult Run(string path, Options options, ProgressLog progress)
    {
        var model = CliSupport.LoadModel(path);
        if (Directory.Exists(path)) path = Path.Combine(path, "model.onnx");
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        // Rewrites read weights inline: external initializers are read in (relative to the model's folder) on a copy.
        var work = model.Clone();
        foreach (var t in ModelIO.AllTensors(work).Where(ExternalData.IsExternal))
            ExternalData.SetInline(t, ExternalData.ReadBytes(t, dir));

        // A model that already uses the plugin op needs it registered to run at all.
        var originalConfigure = OnnxDeconvSessionOptions.ConfigureFor(model);
        var inputs = Inputs(path, options, originalConfigure);
        var summaries = new List<TargetSummary>();
        var variants = new List<(string Name, byte[]? Bytes, Action<SessionOptions>? Configure)> { (Original, null, originalConfigure) };
        foreach (var target in options.Targets)
        {
            var result = target.Rewrite(work.Clone(), options.Shapes);
            int done = result.Nodes.Count(n => n.Rewritten), skipped = result.Nodes.Count(n => !n.Rewritten);
            if (!result.Changed)
            {
                summaries.Add(new(target.Name, 0, skipped, "nothing rewritten: not timed (it is the original model)"));
                continue;
            }
            summaries.Add(new(target.Name, done, skipped, null));
            byte[] bytes = ModelIO.Serialize(result.Model);
            variants.Add((target.Name, bytes, OnnxDeconvSessionOptions.ConfigureFor(result.Model)));
            // A model that needs the plugin is also timed as Python/C/C++ hosts run it: through the published .so.
            if (OnnxDeconvSessionOptions.UsesPlugin(result.Model) && PublishedPlugin.Path is { } so)
            {
                summaries.Add(new($"{target.Name}{SoSuffix}", done, skipped, null));
                variants.Add(($"{target.Name}{SoSuffix}", bytes, o => o.RegisterCustomOpLibrary(so)));
            }
        }

        var runs = new List<ThreadResult>();
        string name = Path.GetFileName(path);
        foreach (int threads in options.Threads)
        {
            progress.Line($"bench {name}: {threads} thread(s): checking {variants.Count - 1} rewrite(s) against the original, then timing for ~{options.Seconds.ToString(CultureInfo.InvariantCulture)} s");
            var sessions = new List<OrtTimedSession>();
            TimingStats[] timings;
            try
            {
                foreach (var v in variants) sessions.Add(Open(path, v.Bytes, inputs, threads, v.Configure, profilePrefix: null));
                Check(name, variants.Select(v => v.Name).ToList(), sessions, threads);
                var lastReport = TimeSpan.Zero;
                timings = RoundRobinTimer.Measure(sessions, new TimingBudget(TimeSpan.FromSeconds(options.Seconds), MinRounds: 5, Block: LayerBench.BlockRuns),
                    (round, elapsed) =>
                    {
                        if (progress.Interactive)
                        {
                            // The bar follows the time budget: the run ends when it is spent (and the minimum rounds are done).
                            int permille = (int)Math.Min(999, 1000 * elapsed.TotalSeconds / Math.Max(options.Seconds, 1e-3));
                            progress.Step(new ProgressStep(permille, 1000, $"{name} at {threads} thread(s): {round} round(s), {elapsed.TotalSeconds:F0} s"));
                            return;
                        }
                        if (elapsed - lastReport < TimeSpan.FromSeconds(5)) return;
                        lastReport = elapsed;
                        progress.Line($"  ... {round} round(s), {elapsed.TotalSeconds:F0} s");
                    });
            }
            finally { foreach (var s in sessions) s.Dispose(); }

            var list = new List<VariantResult>();
            for (int i = 0; i < variants.Count; i++)
            {
                var nodes = Profile(path, variants[i].Bytes, inputs, threads, variants[i].Configure, options.ProfileRuns);
                list.Add(new VariantResult(variants[i].Name, timings[i], timings[0].MedianMs / timings[i].MedianMs,
                    timings[0].CpuMedianMs / timings[i].CpuMedianMs, nodes));
            }
            runs.Add(new ThreadResult(threads, list));
        }
        progress.Erase();
        return new ModelBenchResult(name, string.Join(", ", inputs.Select(i => $"{i.Name}={string.Join("x", i.Dims)}")), summaries, runs);
    }

    /// <summary>Seeded random inputs for the original model's graph inputs (the same tensors feed every variant).</summary>
    private static IReadOnlyList<TensorValue> Inputs(string path, Options options, Action<SessionOptions>? configure)
    {
        using var so = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        configure?.Invoke(so);
        using var session = OpenChecked(() => new InferenceSession(path, so), path);
        return InputGenerator.Generate(session, options.Shapes, options.Seed);
    }

    private static T OpenChecked<T>(Func<T> open, string what)
    {
        try { return open(); }
        catch (OnnxRuntimeException e) { throw new ModelFormatException($"{what}: ONNX Runtime cannot load it: {e.Message}"); }
    }

    private static OrtTimedSession Open(string path, byte[]? bytes, IReadOnlyList<TensorValue> inputs, int threads,
        Action<SessionOptions>? configure, string? profilePrefix)
    {
        var options = new TimedSessionOptions
        {
            IntraOpThreads = threads,
            Configure = so =>
            {
                configure?.Invoke(so);
                if (profilePrefix is null) return;
                // The prefix first: enabling profiling hands the current prefix to ONNX Runtime.
                so.ProfileOutputPathPrefix = profilePrefix;
                so.EnableProfiling = true;
            },
        };
        return OpenChecked(() => bytes is null ? OrtTimedSession.FromFile(path, inputs, options) : OrtTimedSession.FromBytes(bytes, inputs, options), path);
    }

    /// <summary>Every rewrite's outputs against the original's (ORT_ENABLE_ALL, as timed); a mismatch stops the bench.</summary>
    private static void Check(string model, List<string> names, List<OrtTimedSession> sessions, int threads)
    {
        var expected = RunChecked(sessions[0], model, names[0]);
        for (int i = 1; i < sessions.Count; i++)
        {
            var actual = RunChecked(sessions[i], model, names[i]);
            foreach (var e in expected)
            {
                var c = OutputComparer.Compare(e.Name, e, actual.FirstOrDefault(a => a.Name == e.Name), Tolerance.Default);
                if (!c.Passed)
                    throw new BenchVerificationException($"{model}: the {names[i]} rewrite differs from the original at {threads} thread(s) ({c.Tolerance ?? Tolerance.Default}): {c.Describe()}");
            }
        }
    }

    private static IReadOnlyList<TensorValue> RunChecked(OrtTimedSession session, string model, string name)
    {
        try { return session.RunAndRead(); }
        catch (OnnxRuntimeException e)
        {
            if (name == Original) throw new ModelFormatException($"{model}: ONNX Runtime cannot run it on the random inputs: {e.Message}");
            throw new BenchVerificationException($"{model}: the {name} rewrite fails in ONNX Runtime: {e.Message}");
        }
    }

    /// <summary>Runs the variant with ONNX Runtime's profiler on and returns each node's median kernel time, slowest first.</summary>
    private static List<NodeTime> Profile(string path, byte[]? bytes, IReadOnlyList<TensorValue> inputs, int threads,
        Action<SessionOptions>? configure, int runs)
    {
        var tmp = Directory.CreateTempSubdirectory("onnx-deconv-profile-").FullName;
        try
        {
            string file;
            using (var s = Open(path, bytes, inputs, threads, configure, Path.Combine(tmp, "profile")))
            {
                for (int i = 0; i < runs; i++) s.Run();
                file = s.EndProfiling();
            }
            return NodeProfile.Parse(File.ReadAllText(file));
        }
        finally
        {
            try { Directory.Delete(tmp, recursive: true); } catch (IOException) { }
        }
    }
}
