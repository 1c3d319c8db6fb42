using System.Diagnostics;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// Publishes libonnxdeconv.so once per test run (the documented `dotnet publish src/OnnxDeconv -c Release -r linux-x64`:
/// the dispatcher and its three NativeAOT builds), compiles the C host (tests/native/host.c, which dlopens whichever
/// libonnxruntime.so it is given) against the ONNX Runtime package's header, and restores every ONNX Runtime release
/// the plugin is tested against (tests/native/OrtReleases).
/// A missing toolchain is installed by tools/setup-native.sh; if that fails the tests fail with the reason (never skip).
/// </summary>
public sealed class NativePluginFixture
{
    // Static: every test class that takes this fixture gets its own instance, and two concurrent publishes of the
    // same project clobber each other's native intermediates (ilc died with SIGBUS).
    private static readonly Lazy<string> _library = new(Publish, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<string> _host = new(CompileHost, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<IReadOnlyList<string>> _releases = new(RestoreReleases, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The builds the dispatcher chooses between, by the name it gives them.</summary>
    public static readonly string[] Variants = ["avx512", "avx2", "baseline"];

    /// <summary>The ONNX Runtime releases listed in tests/native/OrtReleases/OrtReleases.csproj.</summary>
    public static IReadOnlyList<string> ReleaseVersions { get; } =
        System.Xml.Linq.XDocument.Load(Path.Combine(RepoPaths.Root, "tests", "native", "OrtReleases", "OrtReleases.csproj"))
            .Descendants("PackageDownload").Single().Attribute("Version")!.Value
            .Split(';').Select(v => v.Trim('[', ']')).ToArray();

    /// <summary>libonnxruntime.so of one release (restored on first use).</summary>
    public string OrtLibrary(string version)
    {
        _ = _releases.Value;
        string lib = Path.Combine(Path.GetDirectoryName(PluginTestKit.OrtPackageDir)!, version, "runtimes", "linux-x64", "native", "libonnxruntime.so");
        if (!File.Exists(lib)) throw new FileNotFoundException($"ONNX Runtime {version} was restored but has no {lib}");
        return lib;
    }

    private static IReadOnlyList<string> RestoreReleases()
    {
        var (code, output) = Run("dotnet", ["restore", Path.Combine(RepoPaths.Root, "tests", "native", "OrtReleases"), "--nologo"],
            RepoPaths.Root, TimeSpan.FromMinutes(10));
        if (code != 0) throw new InvalidOperationException($"dotnet restore tests/native/OrtReleases failed (exit {code}):\n{Tail(output)}");
        return ReleaseVersions;
    }

    /// <summary>Absolute path of the published libonnxdeconv.so (the dispatcher; its builds lie beside it).</summary>
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
        var missing = Variants.Select(v => Path.Combine(PublishDir, $"libonnxdeconv-{v}.so")).Prepend(lib).Where(f => !File.Exists(f)).ToList();
        if (code != 0 || missing.Count > 0)
            throw new InvalidOperationException($"dotnet publish of src/OnnxDeconv failed (exit {code}) or produced no {string.Join(", ", missing)}:\n{Tail(output)}");
        return lib;
    }

    private static string CompileHost()
    {
        EnsureToolchain();
        string dir = Directory.CreateTempSubdirectory("onnxdeconv-host-").FullName;
        string exe = Path.Combine(dir, "host");
        // Not linked to ONNX Runtime: the host dlopens the release it is given, so one binary serves every release.
        var (code, output) = Run("gcc", ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1",
            "-I", PluginTestKit.OrtIncludeDir, Path.Combine(RepoPaths.Root, "tests", "native", "host.c"),
            "-ldl", "-lm", "-o", exe], dir, TimeSpan.FromMinutes(2));
        if (code != 0 || !File.Exists(exe))
            throw new InvalidOperationException($"compiling tests/native/host.c failed (exit {code}):\n{Tail(output)}");
        return exe;
    }

    /// <summary>qemu-x86_64 (installed by tools/setup-native.sh --qemu when missing): runs the C host as an older CPU.</summary>
    public string Qemu => _qemu.Value;
    private static readonly Lazy<string> _qemu = new(() =>
    {
        if (!OnPath("qemu-x86_64"))
        {
            var (code, output) = Run("bash", [Path.Combine(RepoPaths.Root, "tools", "setup-native.sh"), "--qemu"], RepoPaths.Root, TimeSpan.FromMinutes(10));
            if (code != 0 || !OnPath("qemu-x86_64"))
                throw new InvalidOperationException($"qemu-x86_64 is missing and tools/setup-native.sh --qemu could not install it (exit {code}):\n{Tail(output)}");
        }
        return "qemu-x86_64";
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(d => File.Exists(Path.Combine(d, tool)));

    /// <summary>Runs a process, returns exit code and combined output; kills it (and fails) after <paramref name="timeout"/>.</summary>
    public static (int Code, string Output) Run(string file, IEnumerable<string> args, string workingDir, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
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
