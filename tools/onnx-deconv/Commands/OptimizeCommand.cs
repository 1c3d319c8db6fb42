using System.CommandLine;
using System.Text.Json;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Verification;
using Spectre.Console;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// <c>onnx-deconv optimize IN -o OUT</c>: rewrite, verify against IN through ONNX Runtime, save atomically. A model that
/// fails verification is never written; IN is never modified unless --in-place.
/// </summary>
internal static class OptimizeCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("in") { Description = "The model to optimize (.onnx); never modified unless --in-place" };
        var output = new Option<string?>("--output", "-o") { Description = "Where to write the optimized model (written atomically)" };
        var target = new Option<string>("--target")
        {
            Description = "auto (per node, the fastest measured of: unchanged, portable forms, plugin; the default), portable (standard ONNX ops), plugin (OnnxDeconv custom op; needs the plugin registered where the model runs) or convtranspose (Resize+Conv pairs become plain ConvTranspose with the derived kernel)",
            DefaultValueFactory = _ => "auto",
        };
        target.AcceptOnlyFromAmong("auto", "portable", "plugin", "convtranspose");
        var portableOnly = new Option<bool>("--portable-only") { Description = "auto without the plugin candidate (for models that must run without the plugin)" };
        var noCache = new Option<bool>("--no-cache") { Description = "auto: neither read nor write the decision cache ($ONNXDECONV_CACHE_DIR, else $XDG_CACHE_HOME/onnx-deconv or ~/.cache/onnx-deconv)" };
        var budgetMs = new Option<int>("--budget-ms")
        {
            Description = "auto: timing budget per node (and per whole-model comparison), in milliseconds",
            DefaultValueFactory = _ => 500,
        };
        var threads = new Option<int?>("--threads") { Description = "auto: intra-op threads the candidates are timed with (default: all cores)" };
        var verify = new Option<string>("--verify")
        {
            Description = "model (run the whole model and the rewrite in ONNX Runtime), nodes (each rewritten node in isolation with only its weights: " +
                          "for models too big to run twice), none, or auto (model under 512 MiB of model and weights, else nodes)",
            DefaultValueFactory = _ => "auto",
        };
        verify.AcceptOnlyFromAmong("auto", "model", "nodes", "none");
        var noVerify = new Option<bool>("--no-verify") { Description = "Skip verification, same as --verify none (the report says so)" };
        var inPlace = new Option<bool>("--in-place") { Description = "Allow OUT to be IN (or omit -o) and overwrite it" };
        var shape = VerifyCli.ShapeOption();
        var inputs = new Option<string?>("--inputs") { Description = "Verify on input_N.pb files in this folder instead of random inputs" };
        var seed = VerifyCli.SeedOption();
        var atol = VerifyCli.AtolOption();
        var rtol = VerifyCli.RtolOption();
        var json = VerifyCli.JsonOption();

        var cmd = new Command("optimize", "Rewrite transposed convolutions zero-free, verify the result against IN in ONNX Runtime, and save it atomically; prints a before/after table.");
        cmd.Arguments.Add(input);
        foreach (var o in new Option[] { output, target, portableOnly, noCache, budgetMs, threads, verify, noVerify, inPlace, shape, inputs, seed, atol, rtol, json }) cmd.Options.Add(o);

        cmd.SetAction(pr =>
        {
            var stdout = pr.InvocationConfiguration.Output;
            var stderr = pr.InvocationConfiguration.Error;
            string inPath = pr.GetValue(input)!;
            try
            {
                var t = Enum.Parse<Target>(pr.GetValue(target)!, ignoreCase: true);
                if (pr.GetValue(portableOnly) && t != Target.Auto)
                    throw new VerificationInputException($"--portable-only applies to --target auto only, not --target {t.ToString().ToLowerInvariant()}");
                if (pr.GetValue(budgetMs) <= 0) throw new VerificationInputException($"--budget-ms must be > 0, got {pr.GetValue(budgetMs)}");
                if (pr.GetValue(threads) is { } n && n <= 0) throw new VerificationInputException($"--threads must be > 0, got {n}");
                var shapes = ShapeOverrides.Parse(pr.GetValue(shape));
                // Disposed (the bar erased) before any catch below prints an error.
                using var progress = new ProgressLog(stderr, "auto", plainPrefix: "auto: timing ");
                var optimizeOptions = new OptimizeOptions
                {
                    Target = t,
                    PortableOnly = pr.GetValue(portableOnly),
                    Threads = pr.GetValue(threads),
                    NodeBudget = TimeSpan.FromMilliseconds(pr.GetValue(budgetMs)),
                    Shapes = shapes,
                    Cache = t == Target.Auto && !pr.GetValue(noCache) ? new DecisionCache(CliHooks.CacheDirectory) : null,
                    Timer = CliHooks.Timer,
                    Progress = t == Target.Auto ? progress.Step : null,
                };
                return Run(stdout, stderr, progress, inPath, pr.GetValue(output), optimizeOptions,
                    pr.GetValue(noVerify) ? VerifyMode.None : Enum.Parse<VerifyMode>(pr.GetValue(verify)!, ignoreCase: true),
                    pr.GetValue(inPlace), pr.GetValue(json), new VerifyOptions
                    {
                        Tolerance = VerifyCli.ReadTolerance(pr, atol, rtol),
                        Seed = pr.GetValue(seed),
                        Shapes = shapes,
                        InputsDir = pr.GetValue(inputs),
                        Configure = CliHooks.ConfigureSession,
                    });
            }
            catch (Exception e) when (e is ModelFormatException or VerificationInputException)
            {
                stderr.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
            catch (Exception e) when (e is AttributeException or GeometryException or InvalidDataException)
            {
                stderr.WriteLine($"error: {inPath}: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return cmd;
    }

    /// <summary>A model that came with external data is written with initializers of at least this many bytes in "OUT.data".</summary>
    internal const long ExternalDataThreshold = 1024;

    /// <summary>--verify auto runs the whole model when the model file plus its external data is under this size, else node by node.</summary>
    internal const long VerifyModelMaxBytes = 512L << 20;

    /// <summary>New initializers of at least this size go to a spill file next to OUT while a model with external data is rewritten.</summary>
    internal const long SpillThreshold = 1L << 20;

    internal enum VerifyMode { Auto, Model, Nodes, None }

    private static int Run(TextWriter stdout, TextWriter stderr, ProgressLog progress, string inPath, string? outPath, OptimizeOptions optimizeOptions,
        VerifyMode verifyMode, bool inPlace, bool json, VerifyOptions verifyOptions)
    {
        if (!File.Exists(inPath)) throw new ModelFormatException($"{inPath}: input model file not found");
        if (outPath is null)
        {
            if (!inPlace) throw new VerificationInputException("-o OUT is required (or --in-place to overwrite IN)");
            outPath = inPath;
        }
        bool sameFile = string.Equals(Path.GetFullPath(outPath), Path.GetFullPath(inPath), StringComparison.Ordinal);
        if (sameFile && !inPlace)
            throw new VerificationInputException($"-o {outPath} is the input model; IN is never modified unless you pass --in-place");

        var inBytes = File.ReadAllBytes(inPath);
        var model = ModelIO.Parse(inBytes, inPath);
        var inDir = Path.GetDirectoryName(Path.GetFullPath(inPath))!;
        bool external = ModelIO.AllTensors(model).Any(ExternalData.IsExternal);
        long modelBytes = inBytes.LongLength + ModelIO.AllTensors(model).Where(ExternalData.IsExternal).Sum(TensorBytes);
        if (verifyMode == VerifyMode.Auto) verifyMode = modelBytes < VerifyModelMaxBytes ? VerifyMode.Model : VerifyMode.Nodes;
        bool noVerify = verifyMode == VerifyMode.None;
        var before = OptimizeReport.OpCounts(model);
        // The optimizer may edit what it is given: hand it a copy so the original stays intact for verification.
        // External weights stay external (checked against the disk now, read one node at a time by the rewrites,
        // relative to IN's folder); the output writes large tensors to a side file next to OUT.
        var work = model.Clone();
        if (external)
        {
            ModelIO.SetSourceDirectory(model, inDir);
            ModelIO.SetSourceDirectory(work, inDir);
            ModelIO.ValidateExternalData(work);
        }
        // Unless the whole rewritten model is run in memory anyway (--verify model), each node's new weights leave
        // memory right after its rewrite, so a model bigger than memory is rewritten one node at a time.
        using var spill = external && verifyMode is VerifyMode.Nodes or VerifyMode.None
            ? NewSpill(Path.GetDirectoryName(Path.GetFullPath(outPath))!, Path.GetFileName(outPath))
            : null;
        if (optimizeOptions.Target == Target.Auto && modelBytes >= CliHooks.AutoMaxModelBytes)
        {
            // Measuring needs every candidate's session (each with the node's weights) alive at once: several copies of
            // the largest tensor. A model this big is lowered without measuring, keeping the one-node-at-a-time memory bound.
            stderr.WriteLine($"warning: --target auto: {inPath} holds {modelBytes / (1024.0 * 1024.0):N0} MiB of model and weights, over the " +
                             $"{CliHooks.AutoMaxModelBytes / (1024.0 * 1024.0):N0} MiB auto times node by node in memory; lowering with --target portable " +
                             "instead (pass --target plugin or portable to choose)");
            optimizeOptions = optimizeOptions with { Target = Target.Portable, PortableOnly = false, Cache = null, Progress = null };
        }
        var target = optimizeOptions.Target;
        int spilled = 0;
        var result = CliHooks.Optimizer(work, optimizeOptions with
        {
            // The lowerings write large rearranged weights straight into the spill, slice by slice.
            Spill = spill,
            AfterNode = spill is null ? null : m =>
            {
                // The node's weights (read, and any new ones built in memory) are garbage once spilled; collect them
                // now so the peak is one node's weights, not however many the GC would let pile up on the large
                // object heap (measured on the 2.3 GB model with --verify none: 302 MiB with this, 1,849 MiB without).
                spill.SpillInitializers(m);
                if (spill.Tensors == spilled) return;
                spilled = spill.Tensors;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            },
        });
        progress.Erase(); // the bar goes before the report is printed
        foreach (var w in result.Warnings) stderr.WriteLine($"warning: {w}");
        var after = OptimizeReport.OpCounts(result.Model);
        var console = VerifyCli.Console(stdout);

        if (!result.Changed)
        {
            bool otherFolder = !string.Equals(Path.GetDirectoryName(Path.GetFullPath(outPath)), inDir, StringComparison.Ordinal);
            if (!sameFile && external && otherFolder)
                // The side files are relative to IN's folder: carry them along (the model bytes stay as they were).
                Write(outPath, () => ModelIO.Save(model, outPath, new ModelSaveOptions { SourceDirectory = inDir, SortTopologically = false }));
            else if (!sameFile)
                Write(outPath, () => AtomicFile.WriteAllBytes(outPath, inBytes));
            string note = sameFile ? $"nothing to rewrite: {inPath} left unchanged" : $"nothing to rewrite: wrote {outPath} as a byte-identical copy of {inPath}";
            var unchangedMemory = Memory(model, result.Model, modelBytes);
            if (json) WriteJson(stdout, inPath, outPath, target, before, after, result, null, verifySkipped: false, written: !sameFile, note, null, unchangedMemory);
            else
            {
                stdout.WriteLine($"optimize {inPath} -> {outPath} (target {target.ToString().ToLowerInvariant()})");
                if (result.Nodes.Count > 0) console.Write(OptimizeReport.NodeTable(result.Nodes));
                WritePatterns(console, result);
                WriteAuto(console, stdout, result);
                stdout.WriteLine(note);
                WriteMemory(stdout, unchangedMemory);
            }
            return ExitCodes.Ok;
        }

        VerificationReport? verification = null;
        if (!noVerify)
        {
            try
            {
                verification = verifyMode == VerifyMode.Nodes
                    ? NodeVerifier.Verify(model, result.Model, verifyOptions)
                    : Verifier.Verify(ModelSource.FromFile(inPath),
                        ModelSource.FromModel(result.Model, "rewritten model", external ? inDir : null),
                        verifyOptions);
            }
            catch (VerificationInputException e)
            {
                throw new VerificationInputException($"cannot verify the rewrite, {outPath} not written: {e.Message} (or pass --no-verify to skip verification)", e);
            }
        }
        bool ok = verification?.Passed ?? true;
        string outcome = !ok ? $"verification failed: {outPath} NOT written"
            : noVerify ? $"verification skipped (--no-verify): wrote {outPath} UNVERIFIED"
            : verifyMode == VerifyMode.Nodes ? $"verified node by node: wrote {outPath}"
            : $"verified: wrote {outPath}";
        if (ok)
            Write(outPath, () => ModelIO.Save(result.Model, outPath, external
                ? new ModelSaveOptions { ExternalDataThreshold = ExternalDataThreshold, SourceDirectory = inDir }
                : new ModelSaveOptions()));

        var memory = Memory(model, result.Model, modelBytes);
        string? mode = noVerify ? null : verifyMode.ToString().ToLowerInvariant();
        if (json) WriteJson(stdout, inPath, outPath, target, before, after, result, verification, noVerify, written: ok, outcome, mode, memory);
        else
        {
            stdout.WriteLine($"optimize {inPath} -> {outPath} (target {target.ToString().ToLowerInvariant()})");
            console.Write(OptimizeReport.OpTable(before, after));
            console.Write(OptimizeReport.NodeTable(result.Nodes));
            WritePatterns(console, result);
            WriteAuto(console, stdout, result);
            if (verification is not null)
            {
                stdout.WriteLine(verifyMode == VerifyMode.Nodes
                    ? "verification: each rewritten node in isolation (--verify nodes), one node's weights in memory at a time"
                    : "verification: whole model (--verify model)");
                VerifyCli.WriteVerification(console, stdout, verification);
            }
            stdout.WriteLine($"{result.Nodes.Count(n => n.Rewritten)} node(s) rewritten, {result.Nodes.Count(n => !n.Rewritten)} skipped; {outcome}");
            WriteMemory(stdout, memory);
            if (ok) PluginNotice.Write(stdout, result.Model);
        }
        if (!ok) stderr.WriteLine($"error: {outcome} (the rewritten model does not match {inPath}; see the table)");
        return ok ? ExitCodes.Ok : ExitCodes.VerificationFailed;
    }

    private static void WritePatterns(IAnsiConsole console, OptimizeResult result)
    {
        var patterns = OptimizeReport.UpsamplePatterns(result.Nodes);
        if (patterns.Count > 0) console.Write(OptimizeReport.PatternTable(patterns, result.Nodes));
    }

    /// <summary>--target auto: the measured candidates per node and the whole-model comparison.</summary>
    private static void WriteAuto(IAnsiConsole console, TextWriter stdout, OptimizeResult result)
    {
        if (result.Nodes.Any(n => n.Candidates is { Count: > 0 })) console.Write(OptimizeReport.CandidateTable(result.Nodes));
        if (result.WholeModel is { } w)
            stdout.WriteLine(OptimizeReport.WholeModelLine(w));
    }

    private static SpillFile NewSpill(string outDir, string outName)
    {
        try { return new SpillFile(outDir, outName, SpillThreshold); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelFormatException($"{Path.Combine(outDir, outName)}: cannot create a spill file for the rewritten weights in {outDir}: {e.Message}", e); }
    }

    /// <summary>Bytes of a tensor's data (external length or inline size); 0 when its shape is unusable.</summary>
    private static long TensorBytes(TensorProto t)
    {
        try
        {
            if (ExternalData.IsExternal(t)) return ExternalData.ExpectedByteLength(t) ?? 0;
            return t.HasRawData ? t.RawData.Length : ExternalData.ExpectedByteLength(t) ?? 0;
        }
        catch (Exception e) when (e is InvalidDataException or OverflowException) { return 0; }
    }

    /// <summary>Peak memory of this run next to the largest tensor, so the report shows how far from "one tensor at a time" it was.</summary>
    internal sealed record MemoryReport(long? PeakRssBytes, long LargestTensorBytes, long ModelBytes);

    private static MemoryReport Memory(ModelProto input, ModelProto output, long modelBytes)
    {
        long largest = ModelIO.AllTensors(input).Concat(ModelIO.AllTensors(output)).Select(TensorBytes).DefaultIfEmpty(0).Max();
        return new MemoryReport(PeakRss(), largest, modelBytes);
    }

    /// <summary>The process's peak resident set (VmHWM in /proc/self/status), or the runtime's peak working set elsewhere.</summary>
    internal static long? PeakRss()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                    && long.TryParse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture, out var kb))
                    return kb * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        try { return System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64; }
        catch (PlatformNotSupportedException) { return null; }
    }

    private static void WriteMemory(TextWriter stdout, MemoryReport m)
    {
        static string Mib(long b) => $"{b / (1024.0 * 1024.0):N1} MiB";
        stdout.WriteLine($"memory: peak RSS {(m.PeakRssBytes is { } p ? Mib(p) : "unknown")} (VmHWM, whole process), " +
                         $"largest tensor {Mib(m.LargestTensorBytes)}, model with its data {Mib(m.ModelBytes)}");
    }

    private static void Write(string outPath, Action write)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelFormatException($"{outPath}: cannot write the output model: {e.Message}", e); }
    }

    private static void WriteJson(TextWriter stdout, string inPath, string outPath, Target target,
        IReadOnlyDictionary<string, int> before, IReadOnlyDictionary<string, int> after, OptimizeResult result,
        VerificationReport? verification, bool verifySkipped, bool written, string message, string? verifyMode, MemoryReport memory)
    {
        stdout.WriteLine(JsonSerializer.Serialize(new
        {
            input = inPath,
            output = outPath,
            target = target.ToString().ToLowerInvariant(),
            changed = result.Changed,
            written,
            message,
            verificationSkipped = verifySkipped,
            verifyMode,
            opsBefore = before,
            opsAfter = after,
            nodes = result.Nodes,
            patterns = OptimizeReport.PatternJson(OptimizeReport.UpsamplePatterns(result.Nodes), result.Nodes),
            wholeModel = result.WholeModel,
            requiresPlugin = written ? PluginNotice.Json(result.Model) : null,
            warnings = result.Warnings,
            verification = verification is null ? null : VerifyCli.VerificationJson(verification),
            memory = new { peakRssBytes = memory.PeakRssBytes, largestTensorBytes = memory.LargestTensorBytes, modelBytes = memory.ModelBytes },
        }, VerifyCli.Json));
    }
}
