using System.Text.Json;
using OnnxDeconv.Cli;
using OnnxDeconv.Cli.Output;

namespace OnnxDeconv.Cli.Tests;

/// <summary>Runs the CLI in-process with captured output.</summary>
internal static class CliHarness
{
    public sealed record Result(int Code, string Out, string Err)
    {
        public JsonElement Json() => JsonDocument.Parse(Out).RootElement;

        /// <summary>Stdout with every line break and the indent after it read as one space (explain wraps prose at 80 columns).</summary>
        public string Flat => System.Text.RegularExpressions.Regex.Replace(Out, @" *\r?\n *", " ");
        public override string ToString() => $"exit {Code}\n--- stdout\n{Out}\n--- stderr\n{Err}";
    }

    /// <summary>Runs as if COLUMNS were unset and the output not a terminal (120 columns), whatever the test runner's terminal is.</summary>
    public static Result Run(params string[] args) => RunAt(null, args);

    /// <summary>Runs as if COLUMNS were <paramref name="columns"/> (null: unset), optionally as if stderr/stdout were a terminal.</summary>
    public static Result RunAt(string? columns, string[] args, bool interactive = false)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        using var pin = Terminal.Pin(columns, interactive);
        int code = CliApp.Run(args, o, e);
        return new Result(code, o.ToString(), e.ToString());
    }

    public static long[] Longs(this JsonElement e) => e.EnumerateArray().Select(x => x.GetInt64()).ToArray();

    /// <summary>A temp folder deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("onnx-deconv-cli-").FullName;
        public string File(string name) => System.IO.Path.Combine(Path, name);
        public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
    }
}
