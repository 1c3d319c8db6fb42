using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Runtime;
using Spectre.Console;

namespace OnnxDeconv.Cli.Commands;

/// <summary>A command-line value is malformed (e.g. "--input 2,x"); exit code 3 with this message.</summary>
internal sealed class UsageException(string message) : InvalidInputException(message);

/// <summary>Small helpers shared by the info and explain commands: argument parsing, console and JSON output, error mapping.</summary>
internal static class CliSupport
{
    /// <summary>
    /// Runs a command body: the one place a bad-input exception (<see cref="InvalidInputException"/>, whatever library
    /// threw it) becomes "error: ..." on stderr and exit code 3. Every command's action runs inside it.
    /// </summary>
    public static int Guard(TextWriter stderr, Func<int> body)
    {
        try { return body(); }
        catch (InvalidInputException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return ExitCodes.InvalidInput;
        }
    }

    /// <summary>Loads a model, naming the file in every failure.</summary>
    public static ModelProto LoadModel(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "model.onnx"); // backend-test folders hold model.onnx
        if (!File.Exists(path)) throw new ModelFormatException($"{path}: file not found");
        return ModelIO.Load(path);
    }

    /// <summary>"28" or "28,28" (also "28x28") to one value per axis.</summary>
    public static long[]? ParseList(string option, string? text)
    {
        if (text is null) return null;
        var parts = text.Split([',', 'x', 'X'], StringSplitOptions.TrimEntries);
        var values = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!long.TryParse(parts[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out values[i]))
                throw new UsageException($"{option}: '{text}' is not an integer or a comma-separated list of integers");
        return values;
    }

    /// <summary>Parses repeated "--shape name=1,3,64,64" values (the one parser: <see cref="OnnxDeconv.GraphRewrite.Shapes.ShapeSpecs"/>).</summary>
    public static IReadOnlyDictionary<string, long[]> ParseShapes(IEnumerable<string>? specs) => OnnxDeconv.GraphRewrite.Shapes.ShapeSpecs.Parse(specs);

    /// <summary>
    /// A Spectre console writing to <paramref name="writer"/> at the terminal's width (<see cref="Terminal.Width"/>):
    /// plain text (no ANSI) unless it is the real, non-redirected terminal, so captured and piped output stays readable.
    /// </summary>
    public static IAnsiConsole Console(TextWriter writer)
    {
        bool terminal = ReferenceEquals(writer, System.Console.Out) && !System.Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = Terminal.Width(writer);
        return console;
    }

    public static TextTable NewTable(params string[] headers) => new(headers);

    /// <summary>Adds a row of plain text (model names may contain '[': never read as markup).</summary>
    public static void Row(TextTable t, params string?[] cells) => t.AddRow(cells);

    public static string Dims(IEnumerable<long>? dims) => dims is null ? "?" : "[" + string.Join(", ", dims.Select(d => d < 0 ? "?" : d.ToString(CultureInfo.InvariantCulture))) + "]";

    public static string Shape(IEnumerable<long>? dims) => dims is null ? "?" : string.Join("x", dims.Select(d => d < 0 ? "?" : d.ToString(CultureInfo.InvariantCulture)));

    public static JsonArray? Json(IEnumerable<long>? values) => values is null ? null : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    public static JsonArray? Json(IEnumerable<float>? values) => values is null ? null : new JsonArray(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    public static JsonArray Json(IEnumerable<string> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void WriteJson(TextWriter w, JsonNode node) => w.WriteLine(node.ToJsonString(JsonOptions));
}

/// <summary>
/// Concrete shapes of a model's values for reports: probed with ONNX Runtime on zero inputs (exact, follows --shape),
/// or the declared static shapes when probing is impossible; <see cref="Notes"/> says which and why.
/// </summary>
internal sealed class ModelShapes
{
    private readonly Dictionary<string, long[]> _shapes = new(StringComparer.Ordinal);
    private readonly GraphIndex _index;
    private readonly bool _useDeclared;

    public List<string> Notes { get; } = [];
    /// <summary>"probed" (ONNX Runtime), "declared" (from the model's value_info) or "none".</summary>
    public string Source { get; private set; } = "none";
    public IReadOnlyList<string> InputsNeedingShape { get; private set; } = [];

    private ModelShapes(GraphIndex index, bool useDeclared)
    {
        _index = index;
        _useDeclared = useDeclared;
    }

    public static ModelShapes Resolve(ModelProto model, string? modelPath, IReadOnlyDictionary<string, long[]> overrides, IEnumerable<string> wanted)
    {
        var index = new GraphIndex(model);
        var wantedList = wanted.Where(w => w.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        // Fails early (exit 3) on a --shape that names no graph input.
        var inputs = ShapeProbe.ResolveInputs(model, overrides);
        var shapes = new ModelShapes(index, overrides.Count == 0);
        if (wantedList.Count == 0) return shapes;
        if (inputs.Missing.Count > 0)
        {
            shapes.InputsNeedingShape = inputs.Missing;
            shapes.Notes.AddRange(inputs.Missing.Select(m =>
                $"graph input '{m}' has a symbolic or unknown dimension {ShapeProbe.DeclaredShape(model, m)}: give it with --shape {m}=d0,d1,... to get every shape"));
            shapes.UseDeclared();
            return shapes;
        }
        try
        {
            string? dir = modelPath is null ? null : Path.GetDirectoryName(Path.GetFullPath(modelPath));
            var result = ShapeProbe.Probe(model, wantedList, overrides, dir);
            foreach (var (k, v) in result.Shapes) shapes._shapes[k] = v;
            shapes.Source = "probed";
            shapes.Notes.Add("shapes probed with ONNX Runtime on zero inputs " +
                string.Join(", ", result.InputShapes.Select(kv => $"{kv.Key}={CliSupport.Shape(kv.Value)}")));
            shapes.Notes.AddRange(result.Assumptions);
        }
        catch (ShapeProbeException e)
        {
            shapes.Notes.Add(e.Message);
            shapes.UseDeclared();
        }
        return shapes;
    }

    private void UseDeclared()
    {
        if (!_useDeclared) return; // declared intermediate shapes would contradict the sizes given with --shape
        Source = "declared";
        Notes.Add("shapes below are the model's declared static shapes where complete");
    }

    /// <summary>Concrete shape of <paramref name="value"/> or null when unknown.</summary>
    public long[]? Of(string value)
    {
        if (_shapes.TryGetValue(value, out var s)) return s;
        if (_index.Initializer(value) is { } t) return t.Dims.ToArray();
        if (Source == "declared" && _index.Shape(value) is { } d && d.All(x => x >= 0)) return d;
        return null;
    }
}
