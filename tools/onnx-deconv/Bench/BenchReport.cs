using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxDeconv.Cli.Bench;

/// <summary>Everything one bench run measured: the machine, the layer suite's rows and the whole models (either may be empty).</summary>
public sealed record BenchReport(string Command, string Date, string Machine, string Isa, Dictionary<int, double> PeakGflops,
    string LoadAverageAtStart, string LoadAverageAtEnd, List<LayerResult> Layers, List<ModelBenchResult> Models, string? PluginSo = null)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals, // a speed-up over a 0 ms run is Infinity
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);
}

/// <summary>Facts about the machine a run happened on, and atomic writes for the run's files.</summary>
public static class BenchEnvironment
{
    /// <summary>The 1/5/15-minute load averages (/proc/loadavg): other processes' share of the cores.</summary>
    public static string LoadAverage()
    {
        try { return string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return "unknown"; }
    }

    public static string Machine()
    {
        string cpu = "unknown CPU";
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        string ort = typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version?.ToString(3) ?? "?";
        return $"{cpu}, {Environment.ProcessorCount} logical cores, {RuntimeInformation.FrameworkDescription}, ONNX Runtime {ort}";
    }

    public static string Now() => DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);

    public static void AtomicWrite(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
