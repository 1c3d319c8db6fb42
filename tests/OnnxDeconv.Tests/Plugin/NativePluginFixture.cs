using System.Diagnostics;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// Publishes libonnxdeconv.so once per test run (the documented `dotnet publish src/OnnxDeconv -c Release -r linux-x64`)
/// and compiles the C host (tests/native/host.c) against the ONNX Runtime package's header and library.
/// A missing toolchain is installed by tools/setup-native.sh; if that fails the tests fail with the reason (never skip).
/// </summary>
public sealed class NativePluginFixture
{
    private readonly Lazy<string> _library;
    private readonly Lazy<string> _host;

    public NativePluginFixture()
    {
        _library = new Lazy<string>(Publish, LazyThreadSafetyMode.ExecutionAndPublication);
        _host = new Lazy<string>(CompileHost, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Absolute path of the published libonnxdeconv.so.</summary>
    public string Library => _library.Value;

    /// <summary>Absolute path of the compiled C host.</summary>
    public string Host => _host.Value;

    public static string PublishDir => Path.Combine(RepoPaths.Root, "src", "OnnxDeconv", "bin", "Release", "net10.0", "linux-x64", "publish");

    private static void EnsureToolchain()
    {
        if (OnPath("gcc") && OnPath("objcopy")) return;
        var (code, output) = Run("bash", [Path.Combine(RepoPaths.Root, "tools", "setup-native.sh")], RepoPaths.Root, TimeSpan.FromMinutes(10));
        if (code != 0 || !OnPath("gcc") || !OnPath("objcopy"))
            throw new InvalidOperationException($"the native toolchain (gcc, objcopy) is missing and tools/setup-native.sh could not install it (exit {code}):\n{Tail(output)}");
    }

    private static string Publish()
    {
        EnsureToolchain();
        var (code, output) = Run("dotnet", ["publish", Path.Combine(RepoPaths.Root, "src", "OnnxDeconv"), "-c", "Release", "-r", "linux-x64", "--nologo"],
            RepoPaths.Root, TimeSpan.FromMinutes(10));
        string lib = Path.Combine(PublishDir, "libonnxdeconv.so");
        if (code != 0 || !File.Exists(lib))
            throw new InvalidOperationException($"dotnet publish of src/OnnxDeconv failed (exit {code}) or produced no {lib}:\n{Tail(output)}");
        return lib;
    }

    private static string CompileHost()
    {
        EnsureToolchain();
        string dir = Directory.CreateTempSubdirectory("onnxdeconv-host-").FullName;
        string exe = Path.Combine(dir, "host");
        // The package ships libonnxruntime.so whose SONAME is libonnxruntime.so.1: give the loader that name beside the host.
        string native = Path.Combine(dir, "lib");
        Directory.CreateDirectory(native);
        File.CreateSymbolicLink(Path.Combine(native, "libonnxruntime.so"), Path.Combine(PluginTestKit.OrtNativeDir, "libonnxruntime.so"));
        File.CreateSymbolicLink(Path.Combine(native, "libonnxruntime.so.1"), Path.Combine(PluginTestKit.OrtNativeDir, "libonnxruntime.so"));
        var (code, output) = Run("gcc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1",
            "-I", PluginTestKit.OrtIncludeDir, Path.Combine(RepoPaths.Root, "tests", "native", "host.c"),
            "-L", native, "-lonnxruntime", $"-Wl,-rpath,{native}", "-lm", "-o", exe], dir, TimeSpan.FromMinutes(2));
        if (code != 0 || !File.Exists(exe))
            throw new InvalidOperationException($"compiling tests/native/host.c failed (exit {code}):\n{Tail(output)}");
        return exe;
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(d => File.Exists(Path.Combine(d, tool)));

    /// <summary>Runs a process, returns exit code and combined output; kills it (and fails) after <paramref name="timeout"/>.</summary>
    public static (int Code, string Output) Run(string file, IEnumerable<string> args, string workingDir, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The test host runs under MSBuild-related variables that would confuse a nested dotnet publish.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout}");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static string Tail(string s) => s.Length <= 4000 ? s : "..." + s[^4000..];
}
