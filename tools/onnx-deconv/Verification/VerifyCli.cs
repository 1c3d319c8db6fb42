using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Verification;
using Spectre.Console;

namespace OnnxDeconv.Cli.Verification;

/// <summary>Options and output shared by verify, optimize and test.</summary>
internal static class VerifyCli
{
    public static Option<string[]> ShapeOption() => new("--shape")
    {
        Description = "Concrete shape for an input with symbolic dims, NAME=D1,D2,... (repeatable), e.g. --shape input=1,3,64,64",
        HelpName = "name=dims",
        Arity = ArgumentArity.ZeroOrMore,
    };

    public static Option<int> SeedOption() => new("--seed")
    {
        Description = "Seed of the random inputs (float: uniform [-1,1], ints: 0..3, bool)",
        DefaultValueFactory = _ => 0,
    };

    public static Option<double> AtolOption() => new("--atol")
    {
        Description = "Absolute tolerance: pass when |a-b| <= atol + rtol*|b|",
        DefaultValueFactory = _ => Tolerance.DefaultAtol,
    };

    public static Option<double> RtolOption() => new("--rtol")
    {
        Description = "Relative tolerance: pass when |a-b| <= atol + rtol*|b|",
        DefaultValueFactory = _ => Tolerance.DefaultRtol,
    };

    public static Option<bool> JsonOption() => new("--json") { Description = "Print a machine-readable JSON report instead of tables" };

    public static Tolerance ReadTolerance(ParseResult pr, Option<double> atol, Option<double> rtol)
    {
        double a = pr.GetValue(atol), r = pr.GetValue(rtol);
        if (!(a >= 0) || !(r >= 0) || double.IsInfinity(a) || double.IsInfinity(r))
            throw new VerificationInputException($"--atol/--rtol must be finite and >= 0 (got {a}, {r})");
        return new Tolerance(a, r);
    }

    /// <summary>Loads a model file to check it exists and parses; the message names the file. Files over 2 GB are only checked for existence (protobuf cannot parse them; ONNX Runtime reads them by path).</summary>
    public static ModelProto? CheckModelFile(string path, string role)
    {
        if (!File.Exists(path))
            throw new ModelFormatException($"{path}: {role} model file not found");
        if (new FileInfo(path).Length >= int.MaxValue) return null;
        return ModelIO.Load(path);
    }

    public static IAnsiConsole Console(TextWriter writer) => Commands.CliSupport.Console(writer);

    public static string[] Row(params string[] cells) => cells;

    public static TextTable OutputTable(IEnumerable<OutputComparison> outputs, NoiseFloor.Judgement? floor = null)
    {
        var table = new TextTable("Output", "Shape", "Max abs err", "Max rel err", "Worst index (got / expected)", "Result") { Border = TableBorder.Ascii }.Names("Output");
        foreach (var o in outputs)
        {
            string worst = o.WorstIndex is null || (o.Passed && o.MaxAbsError == 0) ? "-"
                : $"[{string.Join(",", o.WorstIndex)}] ({Num(o.WorstActual)} / {Num(o.WorstExpected)})";
            var within = floor is { Passed: true } ? floor.Outputs.FirstOrDefault(f => f.Name == o.Name) : null;
            string result = o.Passed ? "pass"
                : within is not null ? $"pass: noise floor ({o.Mismatches}/{o.Elements} outside tolerance, the original's own {within.FloorMismatches})"
                : "FAIL" + (o.Problem is null ? "" : $": {o.Problem}")
                + (o.Problem is null && o.Mismatches > 0 ? $": {o.Mismatches}/{o.Elements} outside tolerance" : "");
            table.AddRow(Row(o.Name, Dims(o.ActualDims ?? o.ExpectedDims), o.WorstIndex is null ? "-" : Num(o.MaxAbsError),
                o.WorstIndex is null ? "-" : Num(o.MaxRelError), worst, result));
        }
        return table;
    }

    public static string Dims(long[]? dims) => dims is null ? "-" : "[" + string.Join(",", dims) + "]";

    public static string Num(double? v) => v is null ? "-" : v.Value.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>The per-output table, then plain unwrapped summary lines (greppable in CI logs).</summary>
    public static void WriteVerification(IAnsiConsole console, TextWriter writer, VerificationReport report)
    {
        console.Write(OutputTable(report.Outputs, report.NoiseFloor));
        if (report.Error is not null) writer.WriteLine($"error: {report.Error}");
        writer.WriteLine($"{(report.Passed ? "PASS" : "FAIL")}: {report.Outputs.Count(o => o.Passed)}/{report.Outputs.Count} output(s) within {report.Tolerance} (|a-b| <= atol + rtol*|b|); inputs: {report.InputSource} ({string.Join(", ", report.Inputs.Select(i => $"{i.Name}{Dims(i.Dims)}"))})");
        if (report.NoiseFloor is { } f)
        {
            writer.WriteLine($"noise floor: {f.Summary}");
            writer.WriteLine($"noise floor rule: {NoiseFloor.Rule} (docs/verification.md)");
        }
        foreach (var rule in HalfRules(report)) writer.WriteLine($"  {rule}");
        foreach (var rule in QuantizedRules(report)) writer.WriteLine($"  {rule}");
    }

    /// <summary>The widened rule of each 16-bit float type among the outputs (float16: one float16 step), in words.</summary>
    public static IEnumerable<string> HalfRules(VerificationReport report) =>
        report.Outputs.Select(o => o.ExpectedType ?? o.ActualType).OfType<TensorProto.Types.DataType>().Distinct()
            .Select(t => report.Tolerance.RuleFor(t)).OfType<string>();

    /// <summary>The one-quantization-step rule of each quantized output, in words.</summary>
    public static IEnumerable<string> QuantizedRules(VerificationReport report) => report.Outputs.Select(o => o.QuantizedRule).OfType<string>();

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    public static object VerificationJson(VerificationReport r) => new
    {
        passed = r.Passed,
        error = r.Error,
        inputSource = r.InputSource,
        tolerance = new { atol = r.Tolerance.Atol, rtol = r.Tolerance.Rtol },
        halfPrecisionRules = HalfRules(r).ToList() is { Count: > 0 } rules ? rules : null,
        quantizedRules = QuantizedRules(r).ToList() is { Count: > 0 } qrules ? qrules : null,
        inputs = r.Inputs.Select(i => new { name = i.Name, type = i.ElementType.ToString(), shape = i.Dims }),
        outputs = r.Outputs.Select(OutputJson),
        noiseFloor = r.NoiseFloor is not { } f ? null : new
        {
            passed = f.Passed,
            summary = f.Summary,
            rule = NoiseFloor.Rule,
            factor = NoiseFloor.Factor,
            outputs = f.Outputs.Select(o => new { name = o.Name, rewriteMaxAbs = o.RewriteMaxAbs, floorMaxAbs = o.FloorMaxAbs, floorMismatches = o.FloorMismatches, within = o.Within }),
            nodes = f.Nodes is null ? null : new { passed = f.Nodes.Passed, checkedNodes = f.Nodes.Outputs.Count, failed = f.Nodes.Outputs.Where(o => !o.Passed).Select(o => o.Name) },
        },
    };

    public static object OutputJson(OutputComparison o) => new
    {
        name = o.Name,
        passed = o.Passed,
        shape = o.ActualDims ?? o.ExpectedDims,
        expectedShape = o.ExpectedDims,
        maxAbsError = o.MaxAbsError,
        maxRelError = o.MaxRelError,
        mismatches = o.Mismatches,
        elements = o.Elements,
        worstIndex = o.WorstIndex,
        worstActual = o.WorstActual,
        worstExpected = o.WorstExpected,
        problem = o.Problem,
        elementType = (o.ExpectedType ?? o.ActualType)?.ToString(),
        tolerance = o.Tolerance is { } t ? new { atol = t.Atol, rtol = t.Rtol } : null,
        quantizedRule = o.QuantizedRule,
        stepsOff = o.StepsOff,
    };
}
