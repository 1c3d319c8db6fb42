using System.Diagnostics;

namespace OnnxDeconv.TestSupport;

/// <summary>
/// The published native plugin for tests in any test project: the documented `dotnet publish src/OnnxDeconv -c Release
/// -r linux-x64` (the dispatcher libonnxdeconv.so and its three NativeAOT builds), and running helper processes.
/// </summary>
public static class NativeBuild
{
    public static string PublishDir => Path.Combine(RepoPaths.Root, "src", "OnnxDeconv", "bin", "Release", "net10.0", "linux-x64", "publish");

    /// <summary>The builds the dispatcher chooses between, by the name it gives them.</summary>
    public static readonly string[] Variants = ["avx512", "avx2", "baseline"];

    private static readonly Lazy<string> Published = new(Publish, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The dispatcher, published once per test process.</summary>
    public static string Library => Published.Value;

    /// <summary>gcc and objcopy, installed by tools/setup-native.sh when missing (never skips: fails with the reason).</summary>
    public static void EnsureToolchain()
    {
        if (OnPath("gcc") && OnPath("objcopy")) return;
        var (code, output) = Run("bash", [Path.Combine(RepoPaths.Root, "tools", "setup-native.sh")], RepoPaths.Root, TimeSpan.FromMinutes(10));
        if (code != 0 || !OnPath("gcc") || !OnPath("objcopy"))
            throw new InvalidOperationException($"the native toolchain (gcc, objcopy) is missing and tools/setup-native.sh could not install it (exit {code}):\n{Tail(output)}");
    }

    /// <summary>
    /// Publishes src/OnnxDeconv (the documented command) and returns the dispatcher's path. Several test processes may
    /// ask at once (each test assembly runs in its own): a lock file serialises them, since two concurrent publishes of
    /// one project clobber each other's native intermediates (ilc died with SIGBUS); the second finds it up to date.
    /// </summary>
    public static string Publish()
    {
        EnsureToolchain();
        string lockPath = Path.Combine(RepoPaths.Root, "src", "OnnxDeconv", "obj", "publish.lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        using var held = AcquireLock(lockPath, TimeSpan.FromMinutes(10));
        var (code, output) = Run("dotnet", ["publish", Path.Combine(RepoPaths.Root, "src", "OnnxDeconv"), "-c", "Release", "-r", "linux-x64", "--nologo"],
            RepoPaths.Root, TimeSpan.FromMinutes(10));
        string lib = Path.Combine(PublishDir, "libonnxdeconv.so");
        var missing = Variants.Select(v => Path.Combine(PublishDir, $"libonnxdeconv-{v}.so")).Prepend(lib).Where(f => !File.Exists(f)).ToList();
        if (code != 0 || missing.Count > 0)
            throw new InvalidOperationException($"dotnet publish of src/OnnxDeconv failed (exit {code}) or produced no {string.Join(", ", missing)}:\n{Tail(output)}");
        return lib;
    }

    private static FileStream AcquireLock(string path, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < until) { Thread.Sleep(200); }
        }
    }

    public static bool OnPath(string tool) =>
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

    public static string Tail(string s) => s.Length <= 4000 ? s : "..." + s[^4000..];
}
