using System.Text.Json;
using OnnxDeconv.Cli;

namespace OnnxDeconv.Cli.Tests;

/// <summary>Runs the CLI in-process with captured output.</summary>
internal static class CliHarness
{
    public sealed record Result(int Code, string Out, string Err)
    {
        public JsonElement Json() => JsonDocument.Parse(Out).RootElement;
        public override string ToString() => $"exit {Code}\n--- stdout\n{Out}\n--- stderr\n{Err}";
    }

    public static Result Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
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
