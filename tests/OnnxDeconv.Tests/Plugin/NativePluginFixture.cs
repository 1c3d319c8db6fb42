using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// The published libonnxdeconv.so (<see cref="NativeBuild"/>: the dispatcher and its three NativeAOT builds), compiles the C host (tests/native/host.c, which dlopens whichever
/// libonnxruntime.so it is given) against the ONNX Runtime package's header, and restores every ONNX Runtime release
/// the plugin is tested against (tests/native/OrtReleases).
/// A missing toolchain is installed by tools/setup-native.sh; if that fails the tests fail with the reason (never skip).
/// </summary>
public sealed class NativePluginFixture
{
    // Static: every test class that takes this fixture gets its own instance; one host and one restore serve them all.
    private static readonly Lazy<string> _host = new(CompileHost, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<IReadOnlyList<string>> _releases = new(RestoreReleases, LazyThreadSafetyMode.ExecutionAndPublication);

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
        var (code, output) = NativeBuild.Run("dotnet", ["restore", Path.Combine(RepoPaths.Root, "tests", "native", "OrtReleases"), "--nologo"],
            RepoPaths.Root, TimeSpan.FromMinutes(10));
        if (code != 0) throw new InvalidOperationException($"dotnet restore tests/native/OrtReleases failed (exit {code}):\n{NativeBuild.Tail(output)}");
        return ReleaseVersions;
    }

    /// <summary>Absolute path of the published libonnxdeconv.so (the dispatcher; its builds lie beside it).</summary>
    public string Library => NativeBuild.Library;


    /// <summary>Absolute path of the compiled C host.</summary>
    public string Host => _host.Value;


    private static string CompileHost()
    {
        NativeBuild.EnsureToolchain();
        string dir = Directory.CreateTempSubdirectory("onnxdeconv-host-").FullName;
        string exe = Path.Combine(dir, "host");
        // Not linked to ONNX Runtime: the host dlopens the release it is given, so one binary serves every release.
        var (code, output) = NativeBuild.Run("gcc", ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1",
            "-I", PluginTestKit.OrtIncludeDir, Path.Combine(RepoPaths.Root, "tests", "native", "host.c"),
            "-ldl", "-lm", "-o", exe], dir, TimeSpan.FromMinutes(2));
        if (code != 0 || !File.Exists(exe))
            throw new InvalidOperationException($"compiling tests/native/host.c failed (exit {code}):\n{NativeBuild.Tail(output)}");
        return exe;
    }

    /// <summary>qemu-x86_64 (installed by tools/setup-native.sh --qemu when missing): runs the C host as an older CPU.</summary>
    public string Qemu => _qemu.Value;
    private static readonly Lazy<string> _qemu = new(() =>
    {
        if (!NativeBuild.OnPath("qemu-x86_64"))
        {
            var (code, output) = NativeBuild.Run("bash", [Path.Combine(RepoPaths.Root, "tools", "setup-native.sh"), "--qemu"], RepoPaths.Root, TimeSpan.FromMinutes(10));
            if (code != 0 || !NativeBuild.OnPath("qemu-x86_64"))
                throw new InvalidOperationException($"qemu-x86_64 is missing and tools/setup-native.sh --qemu could not install it (exit {code}):\n{NativeBuild.Tail(output)}");
        }
        return "qemu-x86_64";
    }, LazyThreadSafetyMode.ExecutionAndPublication);

}
