using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Verification;

namespace OnnxDeconv.GraphRewrite.BackendTests;

public sealed record BackendTestOptions
{
    public Tolerance Tolerance { get; init; } = Tolerance.Default;
    /// <summary>Rewrites each model before it runs (null: run the model as stored).</summary>
    public Func<ModelProto, OptimizeResult>? Rewrite { get; init; }
    /// <summary>
    /// As <see cref="Rewrite"/>, given the case's input shapes (docs/shapes.md): those of its stored inputs
    /// (test_data_set_0), else the <see cref="Shapes"/> that name its own inputs. Takes precedence over Rewrite.
    /// </summary>
    public Func<ModelProto, IReadOnlyDictionary<string, long[]>, OptimizeResult>? RewriteAt { get; init; }
    /// <summary>Graph inputs to bind as initializers from test_data_set_0 before rewriting: null = none, empty = all but the first.</summary>
    public IReadOnlyList<string>? FreezeInputs { get; init; }
    /// <summary>Configures the ONNX Runtime session (e.g. registers the OnnxDeconv custom op).</summary>
    public Action<SessionOptions>? Configure { get; init; }
    /// <summary>For cases without stored data: shapes of symbolic input dims for the random inputs.</summary>
    public IReadOnlyDictionary<string, long[]> Shapes { get; init; } = new Dictionary<string, long[]>();
    /// <summary>For cases without stored data: seed of the random inputs.</summary>
    public int Seed { get; init; }
}

public sealed record BackendTestResult
{
    public required BackendTestCase Case { get; init; }
    public required bool Passed { get; init; }
    public required TimeSpan Elapsed { get; init; }
    /// <summary>Why the case failed (first failing data set / output, or the error), null when it passed.</summary>
    public string? Failure { get; init; }
    /// <summary>Per data set and output: "test_data_set_0/y" -> comparison.</summary>
    public IReadOnlyList<(string DataSet, OutputComparison Output)> Outputs { get; init; } = [];
    public IReadOnlyList<NodeReport> Rewrites { get; init; } = [];
    public IReadOnlyList<string> Frozen { get; init; } = [];
    /// <summary>ConvTranspose nodes still in the model after the rewrite (null when not rewriting).</summary>
    public int? ConvTransposeLeft { get; init; }
    /// <summary>How the case was checked when it is not the stored data (e.g. rewritten vs original on random inputs).</summary>
    public string? Note { get; init; }
}

/// <summary>
/// Runs ONNX backend-test folders through ONNX Runtime (graph optimizations disabled), optionally freezing inputs and
/// rewriting the model first, and compares with the stored expected outputs. Input files bind to the graph inputs that
/// are not initializers, in order; output files to the graph outputs, in order.
/// </summary>
public static class BackendTestRunner
{
    public static BackendTestResult Run(BackendTestCase testCase, BackendTestOptions options)
    {
        var clock = Stopwatch.StartNew();
        IReadOnlyList<NodeReport> rewrites = [];
        IReadOnlyList<string> frozen = [];
        int? left = null;
        BackendTestResult Fail(string why) => new()
        {
            Case = testCase, Passed = false, Elapsed = clock.Elapsed, Failure = why, Rewrites = rewrites, Frozen = frozen, ConvTransposeLeft = left,
        };
        try
        {
            var model = ModelIO.Load(testCase.ModelPath);
            var inputNames = InputFreezer.RuntimeInputs(model);
            if (testCase.DataSets.Count == 0)
            {
                // Nothing stored to compare with (e.g. a real model shipped without data): a rewrite can still be
                // checked against the original model on seeded random inputs; a plain run cannot be checked at all.
                if ((options.Rewrite is null && options.RewriteAt is null) || options.FreezeInputs is not null)
                    return Fail($"{testCase.Directory}: no {BackendTestCase.DataSetPrefix}* folder" +
                        (options.Rewrite is null && options.RewriteAt is null ? " (with --rewrite the rewritten model is compared with the original instead)" : " (--freeze-inputs needs test_data_set_0)"));
                // Shapes given for a whole run of cases: each case takes those of its own inputs.
                var given = Shapes.ShapeSpecs.ApplicableTo(model, options.Shapes);
                var rewritten = options.RewriteAt is { } at ? at(model.Clone(), given) : options.Rewrite!(model.Clone());
                rewrites = rewritten.Nodes;
                left = CountConvTranspose(rewritten.Model);
                var v = Verifier.Verify(ModelSource.FromModel(model, testCase.ModelPath), ModelSource.FromModel(rewritten.Model, "rewritten model"),
                    new VerifyOptions
                    {
                        Tolerance = options.Tolerance, Seed = options.Seed, Configure = options.Configure,
                        Shapes = given,
                    });
                var bad = v.Outputs.FirstOrDefault(o => !o.Passed);
                return new BackendTestResult
                {
                    Case = testCase, Passed = v.Passed, Elapsed = clock.Elapsed, Rewrites = rewrites, ConvTransposeLeft = left,
                    Outputs = v.Outputs.Select(o => ("random", o)).ToList(),
                    Note = $"no stored data: rewritten vs original on {v.InputSource}",
                    Failure = v.Passed ? null : v.Error ?? $"output '{bad!.Name}': {bad.Describe()}",
                };
            }
            var outputNames = model.Graph.Output.Select(o => o.Name).ToList();

            if (options.FreezeInputs is { } freezeSpec)
            {
                frozen = InputFreezer.Select(inputNames, freezeSpec);
                var set0 = InputFiles.LoadInputs(testCase.DataSets[0], inputNames);
                model = InputFreezer.Freeze(model, set0.Where(v => frozen.Contains(v.Name)));
            }
            if (options.RewriteAt is not null || options.Rewrite is not null)
            {
                // The stored inputs' shapes are the shapes this case runs at (auto times its candidates there).
                var stored = InputFiles.LoadInputs(testCase.DataSets[0], inputNames).Where(v => !frozen.Contains(v.Name))
                    .ToDictionary(v => v.Name, v => v.Dims, StringComparer.Ordinal);
                var result = options.RewriteAt is { } at ? at(model, stored) : options.Rewrite!(model);
                rewrites = result.Nodes;
                left = CountConvTranspose(result.Model);
                model = result.Model;
            }

            using var runner = new OrtRunner(model, new OrtRunOptions { Configure = options.Configure });
            var outputs = new List<(string, OutputComparison)>();
            string? failure = null;
            foreach (var set in testCase.DataSets)
            {
                var setName = Path.GetFileName(set);
                var inputs = InputFiles.LoadInputs(set, inputNames).Where(v => !frozen.Contains(v.Name)).ToList();
                var expectedFiles = InputFiles.Numbered(set, "output");
                if (expectedFiles.Count != outputNames.Count)
                    return Fail($"{set}: {expectedFiles.Count} output files for {outputNames.Count} graph outputs");
                var actual = runner.Run(inputs, outputNames);
                for (int i = 0; i < outputNames.Count; i++)
                {
                    var expected = InputFiles.LoadTensor(expectedFiles[i]);
                    var c = OutputComparer.Compare(outputNames[i], expected, actual[i], options.Tolerance);
                    outputs.Add((setName, c));
                    if (!c.Passed) failure ??= $"{setName}/{Path.GetFileName(expectedFiles[i])} (output '{c.Name}'): {c.Describe()}";
                }
            }
            return new BackendTestResult
            {
                Case = testCase, Passed = failure is null, Elapsed = clock.Elapsed, Failure = failure,
                Outputs = outputs, Rewrites = rewrites, Frozen = frozen, ConvTransposeLeft = left,
            };
        }
        catch (OnnxRuntimeException e) { return Fail($"ONNX Runtime: {e.Message}"); }
        catch (Exception e) when (e is ModelFormatException or VerificationInputException)
        { return Fail(e.Message); }
        catch (Exception e)
        {
            // One broken case (e.g. a rewrite bug) must not stop a CI run over many cases: report it as a failure.
            return Fail($"{e.GetType().Name}: {e.Message}");
        }
    }

    private static int CountConvTranspose(ModelProto model) =>
        model.Graph.Node.Count(n => n.OpType == Ops.ConvTranspose.OpType && Ops.IsDefaultDomain(n.Domain));
}
