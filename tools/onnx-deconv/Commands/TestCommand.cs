using System.CommandLine;
using System.Globalization;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.BackendTests;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.GraphRewrite.Shapes;

namespace OnnxDeconv.Cli.Commands;

/// <summary>
/// <c>onnx-deconv test DIR...</c>: runs ONNX backend-test folders (optionally rewriting each model first) against their
/// stored outputs; the CI model-regression entry point. Ends with exactly the line "N passed, M failed".
/// </summary>
internal static class TestCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("dir")
        {
            Description = "A case folder (model.onnx + test_data_set_*/) or a folder of case folders",
            // Zero here because "--freeze-inputs DIR" parses DIR as a name; FreezeNamesAndDirs moves it back.
            Arity = ArgumentArity.ZeroOrMore,
        };
        var rewrite = new Option<bool>("--rewrite") { Description = "Rewrite each model first and check the rewritten model against the expected outputs" };
        var target = new Option<string>("--target")
        {
            Description = "Rewrite target with --rewrite: portable, plugin, convtranspose or auto (per node, the fastest measured candidate; decisions cached as for optimize)",
            DefaultValueFactory = _ => "portable",
        };
        target.AcceptOnlyFromAmong("portable", "plugin", "convtranspose", "auto");
        var freeze = new Option<string[]>("--freeze-inputs")
        {
            Description = "Bind graph inputs as initializers from test_data_set_0 before rewriting: all but the first, or the named ones (--freeze-inputs=W,B)",
            HelpName = "names",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var junit = new Option<string?>("--junit") { Description = "Also write JUnit XML to this file (atomically)" };
        var atol = VerifyCli.AtolOption();
        var rtol = VerifyCli.RtolOption();
        var shape = VerifyCli.ShapeOption();
        shape.Description = "Shape of an input with symbolic dims, NAME=D1,D2,...: for cases without test_data_set_* (rewritten vs original on random inputs), and the shape --target auto times candidates at";
        var seed = VerifyCli.SeedOption();

        var cmd = new Command("test", "Run folders in the ONNX backend-test layout through ONNX Runtime and compare with their expected outputs; ends with 'N passed, M failed'.");
        cmd.Arguments.Add(dirs);
        foreach (var o in new Option[] { rewrite, target, freeze, junit, atol, rtol, shape, seed }) cmd.Options.Add(o);

        cmd.SetAction(pr =>
        {
            var stdout = pr.InvocationConfiguration.Output;
            var stderr = pr.InvocationConfiguration.Error;
            try
            {
                bool doRewrite = pr.GetValue(rewrite);
                if (!doRewrite && pr.GetResult(target) is { Implicit: false })
                    throw new VerificationInputException("--target applies only with --rewrite");
                var t = Enum.Parse<Target>(pr.GetValue(target)!, ignoreCase: true);
                var (freezeNames, freezeDirs) = FreezeNamesAndDirs(pr.GetValue(freeze));
                var folders = freezeDirs.Concat(pr.GetValue(dirs) ?? []).ToList();
                if (folders.Count == 0) throw new VerificationInputException("no DIR given: pass a case folder or a folder of case folders");
                var optimizer = CliHooks.Optimizer;
                var shapes = ShapeOverrides.Parse(pr.GetValue(shape));
                // auto times its candidates at the inputs' real shapes (--shape for symbolic dims), with the decision cache.
                var cache = t == Target.Auto ? new DecisionCache(CliHooks.CacheDirectory) : null;
                var optimizeOptions = new OptimizeOptions { Target = t, Shapes = shapes, Cache = cache, Timer = t == Target.Auto ? CliHooks.Timer : null };
                var options = new BackendTestOptions
                {
                    Tolerance = VerifyCli.ReadTolerance(pr, atol, rtol),
                    // Each case is rewritten at its own shapes: its stored inputs', else the --shape naming its inputs.
                    RewriteAt = doRewrite ? (m, caseShapes) => optimizer(m, optimizeOptions with { Shapes = caseShapes }) : null,
                    FreezeInputs = pr.GetResult(freeze) is null ? null : freezeNames,
                    Configure = CliHooks.ConfigureSession,
                    Shapes = shapes,
                    Seed = pr.GetValue(seed),
                };
                // Find every case first, so a mistyped folder fails fast instead of after a long run.
                var cases = folders.SelectMany(BackendTestCase.Discover).ToList();
                // A --shape applies to the cases that have that input; one no case has is a mistake (docs/shapes.md).
                if (shapes.Count > 0)
                {
                    var names = cases.SelectMany(c => ShapeSpecs.InputNames(ModelIO.Load(c.ModelPath))).ToHashSet(StringComparer.Ordinal);
                    if (shapes.Keys.FirstOrDefault(k => !names.Contains(k)) is { } stray)
                        throw new VerificationInputException($"--shape names '{stray}', which is not a graph input of any case (inputs: {string.Join(", ", names.Order(StringComparer.Ordinal))})");
                }
                var results = new List<BackendTestResult>(cases.Count);
                foreach (var c in cases)
                {
                    var r = BackendTestRunner.Run(c, options);
                    results.Add(r);
                    stdout.WriteLine(Line(r, doRewrite));
                }
                int passed = results.Count(r => r.Passed), failed = results.Count - passed;
                if (pr.GetValue(junit) is { } junitPath)
                {
                    try { JUnitReport.Write(junitPath, results); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    { throw new VerificationInputException($"{junitPath}: cannot write JUnit XML: {e.Message}", e); }
                }
                stdout.WriteLine($"{passed} passed, {failed} failed");
                return failed == 0 ? ExitCodes.Ok : ExitCodes.VerificationFailed;
            }
            catch (Exception e) when (e is ModelFormatException or VerificationInputException)
            {
                stderr.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return cmd;
    }

    /// <summary>
    /// Names after --freeze-inputs (comma-separated or repeated). The option takes one token per occurrence, so in
    /// "--freeze-inputs DIR" the parser gives DIR to the option: a token that is an existing folder is a DIR, not a name.
    /// </summary>
    private static (IReadOnlyList<string> Names, IReadOnlyList<string> Dirs) FreezeNamesAndDirs(string[]? tokens)
    {
        var names = new List<string>();
        var dirs = new List<string>();
        foreach (var token in tokens ?? [])
        {
            if (Directory.Exists(token)) dirs.Add(token);
            else names.AddRange(token.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }
        return (names, dirs);
    }

    private static string Line(BackendTestResult r, bool rewrite)
    {
        var time = r.Elapsed.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture);
        var notes = new List<string>();
        if (r.Note is not null) notes.Add(r.Note);
        if (r.Frozen.Count > 0) notes.Add($"frozen: {string.Join(",", r.Frozen)}");
        if (rewrite)
        {
            int done = r.Rewrites.Count(n => n.Rewritten);
            notes.Add($"rewritten {done}/{r.Rewrites.Count} matched node(s)");
            if (r.ConvTransposeLeft is { } left) notes.Add($"ConvTranspose left: {left}");
            foreach (var s in r.Rewrites.Where(n => !n.Rewritten)) notes.Add($"skipped {s.Node}: {s.Reason}");
        }
        var suffix = notes.Count > 0 ? $" [{string.Join("; ", notes)}]" : "";
        return r.Passed ? $"PASS {r.Case.Name} ({time} s){suffix}" : $"FAIL {r.Case.Name} ({time} s){suffix}: {r.Failure}";
    }
}
