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

    /// <summary>
    /// Runs the session (all policy: verify mode by size, auto's large-model fallback, spilling, verification, the
    /// atomic write; see <see cref="OptimizeSession"/>) and prints its outcome as a table or JSON.
    /// </summary>
    private static int Run(TextWriter stdout, TextWriter stderr, ProgressLog progress, string inPath, string? outPath, OptimizeOptions optimizeOptions,
        VerifyMode verifyMode, bool inPlace, bool json, VerifyOptions verifyOptions)
    {
        var o = OptimizeSession.Run(new OptimizeRequest
        {
            InputPath = inPath, OutputPath = outPath, InPlace = inPlace, Options = optimizeOptions, Verify = verifyMode,
            VerifyOptions = verifyOptions, Optimizer = CliHooks.Optimizer, AutoMaxModelBytes = CliHooks.AutoMaxModelBytes,
            Warn = w => stderr.WriteLine($"warning: {w}"),
        });
        progress.Erase(); // the bar goes before the report is printed
        var result = o.Result;
        foreach (var w in result.Warnings) stderr.WriteLine($"warning: {w}");
        var before = OptimizeReport.OpCounts(o.Input);
        var after = OptimizeReport.OpCounts(result.Model);
        var console = VerifyCli.Console(stdout);
        string target = o.Target.ToString().ToLowerInvariant();
        if (!result.Changed)
        {
            if (json) WriteJson(stdout, inPath, o.OutputPath, target, before, after, result, null, verifySkipped: false, o.Written, o.Message, null, o.Memory);
            else
            {
                stdout.WriteLine($"optimize {inPath} -> {o.OutputPath} (target {target})");
                if (result.Nodes.Count > 0) console.Write(OptimizeReport.NodeTable(result.Nodes));
                WritePatterns(console, result);
                WriteAuto(console, stdout, result);
                stdout.WriteLine(o.Message);
                WriteMemory(stdout, o.Memory);
            }
            return ExitCodes.Ok;
        }

        bool noVerify = o.VerifyMode == VerifyMode.None;
        string? mode = noVerify ? null : o.VerifyMode.ToString().ToLowerInvariant();
        if (json) WriteJson(stdout, inPath, o.OutputPath, target, before, after, result, o.Verification, noVerify, o.Written, o.Message, mode, o.Memory);
        else
        {
            stdout.WriteLine($"optimize {inPath} -> {o.OutputPath} (target {target})");
            console.Write(OptimizeReport.OpTable(before, after));
            console.Write(OptimizeReport.NodeTable(result.Nodes));
            WritePatterns(console, result);
            WriteAuto(console, stdout, result);
            if (o.Verification is { } verification)
            {
                stdout.WriteLine(o.VerifyMode == VerifyMode.Nodes
                    ? "verification: each rewritten node in isolation (--verify nodes), one node's weights in memory at a time"
                    : "verification: whole model (--verify model)");
                VerifyCli.WriteVerification(console, stdout, verification);
            }
            stdout.WriteLine($"{result.Nodes.Count(n => n.Rewritten)} node(s) rewritten, {result.Nodes.Count(n => !n.Rewritten)} skipped; {o.Message}");
            WriteMemory(stdout, o.Memory);
            if (o.Written) PluginNotice.Write(stdout, result.Model);
        }
        if (!o.Passed) stderr.WriteLine($"error: {o.Message} (the rewritten model does not match {inPath}; see the table)");
        return o.Passed ? ExitCodes.Ok : ExitCodes.VerificationFailed;
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

    private static void WriteMemory(TextWriter stdout, MemoryReport m)
    {
        static string Mib(long b) => $"{b / (1024.0 * 1024.0):N1} MiB";
        stdout.WriteLine($"memory: peak RSS {(m.PeakRssBytes is { } p ? Mib(p) : "unknown")} (VmHWM, whole process), " +
                         $"largest tensor {Mib(m.LargestTensorBytes)}, model with its data {Mib(m.ModelBytes)}");
    }

    private static void WriteJson(TextWriter stdout, string inPath, string outPath, string target,
        IReadOnlyDictionary<string, int> before, IReadOnlyDictionary<string, int> after, OptimizeResult result,
        VerificationReport? verification, bool verifySkipped, bool written, string message, string? verifyMode, MemoryReport memory)
    {
        stdout.WriteLine(JsonSerializer.Serialize(new
        {
            input = inPath,
            output = outPath,
            target,
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
