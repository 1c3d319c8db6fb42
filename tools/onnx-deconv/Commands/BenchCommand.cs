using System.CommandLine;
using System.Globalization;
using OnnxDeconv.Cli.Bench;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.Kernels;
using Spectre.Console;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// <c>onnx-deconv bench MODEL | --suite layers|all</c>: times original and rewritten models (or the layer suite's
/// candidates) side by side in ONNX Runtime, round-robin after warm-up, at each thread count; outputs are checked
/// before anything is timed. Table on stdout, progress on stderr, optional JSON, markdown block and chart.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Argument<string?>("model") { Description = "The model to time against its rewrites (.onnx); omit with --suite", Arity = ArgumentArity.ZeroOrOne };
        var suite = new Option<string?>("--suite") { Description = "layers: the layer suite (ConvTranspose and Resize+Conv layers); all: the layer suite and every demo model in --models; sweep: the broad sweep of layers from real architectures plus seeded random shapes (docs/sweep.md); qdq: the group-1 suite layers quantized (QDQ), rewritten vs original" };
        suite.AcceptOnlyFromAmong("layers", "all", "sweep", "qdq");
        var layers = new Option<string?>("--layers") { Description = "Suite layers to run, by short name (dcgan1-4, unet1-2, sr, dw, 1d, 3d, resize64, resize256); default all" };
        var candidates = new Option<string?>("--candidates") { Description = "Suite columns besides the reference 'ort': zero-insert, portable, plugin, plugin-so, kernel (default all)" };
        var targets = new Option<string?>("--targets") { Description = "Rewrites of MODEL to time against it: " + string.Join(", ", BenchTarget.Known.Select(t => t.Name)) + " (default all)" };
        var threads = new Option<string?>("--threads") { Description = "Intra-op thread counts, comma-separated (default 1 and all cores: 1," + Environment.ProcessorCount + ")" };
        var seconds = new Option<double>("--seconds") { Description = "Timing budget per layer or model and thread count (at least 5-7 rounds are always run)", DefaultValueFactory = _ => 2.0 };
        var shape = VerifyCli.ShapeOption();
        var models = new Option<string>("--models") { Description = "Folder of demo models for --suite all", DefaultValueFactory = _ => Path.Combine("tests", "models") };
        var top = new Option<int>("--top") { Description = "Nodes per variant in the per-node table (ONNX Runtime's profiler)", DefaultValueFactory = _ => 8 };
        var outMd = new Option<string?>("--out") { Description = "Markdown file whose bench:begin/bench:end block is replaced with the results (created if missing)" };
        var json = new Option<string?>("--json") { Description = "Write the results as JSON to this file (atomically)" };
        var chart = new Option<string?>("--chart") { Description = "Draw the speed-ups over the original to this .svg or .png file" };
        var pluginSo = new Option<string?>("--plugin-so") { Description = $"The published native plugin to time beside the in-process one (default ${PublishedPlugin.EnvironmentVariable}, else the repository's publish folder; 'none': do not)" };

        var cmd = new Command("bench", "Time a model and its rewrites (or the layer suite) side by side in ONNX Runtime at 1 and all threads; outputs are checked before timing.");
        cmd.Arguments.Add(model);
        foreach (var o in new Option[] { suite, layers, candidates, targets, threads, seconds, shape, models, top, outMd, json, chart, pluginSo }) cmd.Options.Add(o);

        cmd.SetAction(pr =>
        {
            var stdout = pr.InvocationConfiguration.Output;
            var stderr = pr.InvocationConfiguration.Error;
            try
            {
                return CliSupport.Guard(stderr, () =>
                {
                    string? modelPath = pr.GetValue(model), suiteName = pr.GetValue(suite);
                    if (modelPath is null == suiteName is null)
                        throw new UsageException(modelPath is null ? "give a MODEL to time, or --suite layers|all" : "give either a MODEL or --suite, not both");
                    double s = pr.GetValue(seconds);
                    if (!(s > 0) || s > 3600) throw new UsageException($"--seconds: {s.ToString(CultureInfo.InvariantCulture)} must be > 0 and <= 3600");
                    int topN = pr.GetValue(top);
                    if (topN < 1) throw new UsageException($"--top: {topN} must be at least 1");
                    var settings = new Settings(ParseThreads(pr.GetValue(threads)), s, topN, pr.GetValue(outMd), pr.GetValue(json), pr.GetValue(chart),
                        "onnx-deconv " + string.Join(' ', pr.Tokens.Select(t => t.Value)), suiteName == "sweep");
                    if (settings.Chart is not null) BenchChart.CheckPath(settings.Chart);
                    PublishedPlugin.Resolve(pr.GetValue(pluginSo));
                    // Checked up front: a long run must not end in a write error.
                    foreach (var (name, file) in new[] { ("--out", settings.Out), ("--json", settings.Json), ("--chart", settings.Chart) })
                        if (file is not null && !Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(file))))
                            throw new UsageException($"{name} {file}: the folder {Path.GetDirectoryName(Path.GetFullPath(file))} does not exist");
                    if (modelPath is not null)
                    {
                        if (pr.GetValue(layers) is not null || pr.GetValue(candidates) is not null)
                            throw new UsageException("--layers and --candidates apply to --suite only");
                        if (!File.Exists(modelPath) && !Directory.Exists(modelPath)) throw new UsageException($"{modelPath}: model file not found");
                        var opts = new ModelBench.Options(ShapeOverrides.Parse(pr.GetValue(shape)), BenchTarget.Parse(pr.GetValue(targets)), settings.Threads, s);
                        return RunModels(stdout, stderr, settings, [modelPath], opts, layerResults: null);
                    }
                    if (pr.GetValue(targets) is not null || (pr.GetValue(shape)?.Length ?? 0) > 0)
                        throw new UsageException("--targets and --shape apply to a MODEL (the suite times every target on its own shapes)");
                    if (suiteName == "qdq")
                    {
                        if (pr.GetValue(candidates) is not null) throw new UsageException("--candidates does not apply to --suite qdq (original vs rewritten QDQ model)");
                        var qdqLayers = LayerBench.Select(Split(pr.GetValue(layers)), QdqLayerBench.Suite);
                        return QdqLayerBench.Report(stdout, QdqLayerBench.Run(qdqLayers, settings.Threads, s, stderr), settings.Json, settings.CommandLine);
                    }
                    bool sweep = suiteName == "sweep";
                    var layerList = LayerBench.Select(Split(pr.GetValue(layers)), sweep ? SweepSuite.Layers : Layer.Suite);
                    // The sweep leaves zero insertion out unless asked: on its large-stride layers (ISTFT, FCN-32s) it costs minutes.
                    string[]? keep = Split(pr.GetValue(candidates));
                    string? soNote = null;
                    if (keep is null && sweep)
                    {
                        keep = SweepCandidates.Where(c => c != Candidate.PluginSo || PublishedPlugin.Path is not null).ToArray();
                        if (PublishedPlugin.Path is null) soNote = $"{Candidate.PluginSo} column left out: {PublishedPlugin.Missing}";
                    }
                    var cols = LayerBench.SelectCandidates(keep, out var defaultNote);
                    soNote ??= defaultNote;
                    if (soNote is not null) stderr.WriteLine($"warning: {soNote}");
                    List<string> demo = [];
                    if (suiteName == "all")
                    {
                        string dir = pr.GetValue(models)!;
                        if (!Directory.Exists(dir)) throw new UsageException($"--models {dir}: folder not found (run from the repository root or pass --models)");
                        demo = Directory.GetFiles(dir, "*.onnx").Order(StringComparer.Ordinal).ToList();
                        if (demo.Count == 0) throw new UsageException($"--models {dir}: no .onnx files");
                    }
                    return RunSuite(stdout, stderr, settings, layerList, cols, demo);
                });
            }
            catch (BenchVerificationException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return ExitCodes.VerificationFailed;
            }
            catch (VerificationInputException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return cmd;
    }

    private sealed record Settings(int[] Threads, double Seconds, int Top, string? Out, string? Json, string? Chart, string CommandLine, bool Sweep)
    {
        public string Loaded { get; } = BenchEnvironment.LoadAverage();
        public Dictionary<int, double> Peak { get; } = [];

        public BenchReport Report(List<LayerResult> layers, List<ModelBenchResult> models, bool partial) =>
            new(CommandLine, BenchEnvironment.Now() + (partial ? " (partial: run still in progress)" : ""), BenchEnvironment.Machine(),
                KernelIsaSelector.Active.ToString(), Peak, Loaded, BenchEnvironment.LoadAverage(), layers, models, PublishedPlugin.Variant());
    }

    private static readonly string[] SweepCandidates = ["portable", "plugin", Candidate.PluginSo, "kernel"];

    private static string[]? Split(string? csv) => csv?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>"1,2" to distinct positive thread counts; default 1 and all cores.</summary>
    internal static int[] ParseThreads(string? csv)
    {
        if (csv is null) return new[] { 1, Environment.ProcessorCount }.Distinct().ToArray();
        var parts = Split(csv)!;
        var result = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int t) || t < 1 || t > 1024)
                throw new UsageException($"--threads: '{csv}' must be a comma-separated list of thread counts between 1 and 1024 (e.g. 1,{Environment.ProcessorCount})");
            if (!result.Contains(t)) result.Add(t);
        }
        if (result.Count == 0) throw new UsageException("--threads: give at least one thread count");
        return result.ToArray();
    }

    private static void MeasurePeak(TextWriter stderr, Settings settings)
    {
        stderr.WriteLine($"ISA {KernelIsaSelector.Active}; measuring FMA peak...");
        // A short run gets a short peak measurement: the peak is context for the GFLOP/s columns, not a result.
        var duration = TimeSpan.FromSeconds(Math.Clamp(settings.Seconds / 2, 0.05, 1));
        foreach (int t in settings.Threads) settings.Peak[t] = FmaPeak.GflopsPerSecond(t, duration);
    }

    private static int RunSuite(TextWriter stdout, TextWriter stderr, Settings settings, List<Layer> layers, List<Candidate> cols, List<string> demo)
    {
        MeasurePeak(stderr, settings);
        using var progress = new ProgressLog(stderr, "bench", plainPrefix: null);
        var results = LayerBench.Run(layers, cols, settings.Threads, settings.Seconds, progress,
            partial => Publish(settings, partial, [], partial: true));
        var console = CliSupport.Console(stdout);
        console.Write(LayerTable(results, cols));
        if (demo.Count == 0)
        {
            Publish(settings, results, [], partial: false);
            Finish(stdout, settings, results, []);
            return ExitCodes.Ok;
        }
        var opts = new ModelBench.Options(new Dictionary<string, long[]>(), BenchTarget.Known, settings.Threads, settings.Seconds);
        return RunModels(stdout, stderr, settings, demo, opts, results);
    }

    private static int RunModels(TextWriter stdout, TextWriter stderr, Settings settings, List<string> paths, ModelBench.Options opts, List<LayerResult>? layerResults)
    {
        if (layerResults is null && settings.Out is not null) MeasurePeak(stderr, settings);
        var layers = layerResults ?? [];
        var results = new List<ModelBenchResult>();
        var console = CliSupport.Console(stdout);
        using var progress = new ProgressLog(stderr, "bench", plainPrefix: null);
        foreach (var path in paths)
        {
            var r = ModelBench.Run(path, opts, progress);
            results.Add(r);
            Publish(settings, layers, results, partial: true);
            WriteModel(console, stdout, r, settings.Top);
        }
        Publish(settings, layers, results, partial: false);
        Finish(stdout, settings, layers, results);
        return ExitCodes.Ok;
    }

    /// <summary>Writes the JSON and the markdown block; after every layer and model too, so a stopped run leaves what it finished.</summary>
    private static void Publish(Settings settings, List<LayerResult> layers, List<ModelBenchResult> models, bool partial)
    {
        var report = settings.Report(layers, models, partial);
        if (settings.Json is not null) BenchEnvironment.AtomicWrite(settings.Json, report.ToJson());
        if (settings.Out is null) return;
        string? chart = settings.Chart is null ? null
            : Path.GetRelativePath(Path.GetDirectoryName(Path.GetFullPath(settings.Out))!, Path.GetFullPath(settings.Chart)).Replace('\\', '/');
        BenchMarkdown.WriteInto(settings.Out, settings.Sweep ? SweepMarkdown.Render(report, settings.Threads) : BenchMarkdown.Render(report, settings.Threads, chart));
    }

    private static void Finish(TextWriter stdout, Settings settings, List<LayerResult> layers, List<ModelBenchResult> models)
    {
        if (settings.Chart is not null)
        {
            var (categories, series, title) = ChartData(settings.Threads, layers, models);
            BenchChart.Write(settings.Chart, title, categories, series);
        }
        foreach (var (what, path) in new[] { ("JSON", settings.Json), ("markdown", settings.Out), ("chart", settings.Chart) })
            if (path is not null) stdout.WriteLine($"wrote {what}: {path}");
    }

    /// <summary>
    /// One group of bars per layer and per model (or per target for a single model), one bar per rewrite and thread
    /// count: speed-up over ONNX Runtime on the original layer/model.
    /// </summary>
    private static (List<string>, List<(string, double[])>, string) ChartData(int[] threads, List<LayerResult> layers, List<ModelBenchResult> models)
    {
        string[] shown = ["portable", "plugin", "auto"];
        var categories = new List<string>();
        categories.AddRange(layers.Select(l => l.ShortName).Distinct());
        if (layers.Count == 0 && models.Count == 1)
        {
            var m = models[0];
            var names = m.Targets.Where(t => t.Note is null).Select(t => t.Name).ToList();
            var single = threads.Select(t => ($"{t} thread(s)", names.Select(n => m.Find(t, n)?.Speedup ?? double.NaN).ToArray())).ToList();
            return (names, single, $"{m.Model}: speed-up over the original in ONNX Runtime");
        }
        categories.AddRange(models.Select(m => Path.GetFileNameWithoutExtension(m.Model)));
        var series = new List<(string, double[])>();
        foreach (var c in shown)
            foreach (int t in threads)
            {
                var values = layers.Select(l => l.ShortName).Distinct()
                    .Select(n => layers.FirstOrDefault(l => l.ShortName == n && l.Threads == t) is { } l && l.Has(c) ? l.Speedup(c) : double.NaN)
                    .Concat(models.Select(m => m.Find(t, c)?.Speedup ?? double.NaN)).ToArray();
                if (values.Any(v => !double.IsNaN(v))) series.Add(($"{c}, {t} thread(s)", values));
            }
        return (categories, series, "Speed-up over ONNX Runtime on the original layer or model");
    }

    private static Output.TextTable LayerTable(List<LayerResult> results, List<Candidate> cols)
    {
        var names = cols.Select(c => c.Name).ToList();
        var t = CliSupport.NewTable(["Layer", "Threads", .. names.Select(n => n == "ort" ? "reference (ORT) ms" : $"{n} ms (x ref)")]);
        foreach (var r in results)
            CliSupport.Row(t, [r.Name, r.Threads.ToString(CultureInfo.InvariantCulture), .. names.Select(n => !r.Has(n) ? "-"
                : n == "ort" ? F($"{r.Ms(n):F3}") : F($"{r.Ms(n):F3} ({r.Speedup(n):F2}x)"))]);
        return t;
    }

    private static void WriteModel(IAnsiConsole console, TextWriter stdout, ModelBenchResult r, int top)
    {
        stdout.WriteLine($"bench {r.Model} (inputs {r.Inputs})");
        foreach (var s in r.Targets.Where(s => s.Note is not null)) stdout.WriteLine($"  {s.Name}: {s.Note}");
        var t = CliSupport.NewTable("Variant", "Threads", "Median ms", "Min ms", "Max ms", "Runs", "x original", "x original (CPU time)", "Nodes rewritten");
        foreach (var run in r.Runs)
            foreach (var v in run.Variants)
            {
                var tm = v.Timing;
                var summary = r.Targets.FirstOrDefault(s => s.Name == v.Name);
                CliSupport.Row(t, v.Name, run.Threads.ToString(CultureInfo.InvariantCulture), F($"{tm.MedianMs:F3}"), F($"{tm.MinMs:F3}"), F($"{tm.MaxMs:F3}"),
                    tm.Runs.ToString(CultureInfo.InvariantCulture), F($"{v.Speedup:F2}x"), F($"{v.CpuSpeedup:F2}x"),
                    summary is null ? "-" : F($"{summary.NodesRewritten} ({summary.NodesSkipped} skipped)"));
            }
        console.Write(t);
        foreach (var run in r.Runs)
        {
            stdout.WriteLine($"Slowest nodes at {run.Threads} thread(s) (ONNX Runtime profiler, median kernel time):");
            var n = CliSupport.NewTable("Variant", "Node", "Op", "Median ms", "Share of node time", "Runs").Names("Node");
            foreach (var v in run.Variants)
            {
                double total = v.Nodes.Sum(x => x.MedianMs);
                foreach (var node in v.Nodes.Take(top))
                    CliSupport.Row(n, v.Name, node.Node, node.OpType, F($"{node.MedianMs:F3}"), total > 0 ? F($"{100 * node.MedianMs / total:F0}%") : "-",
                        node.Runs.ToString(CultureInfo.InvariantCulture));
            }
            console.Write(n);
        }
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
