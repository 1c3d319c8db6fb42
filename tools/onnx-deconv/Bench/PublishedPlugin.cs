using OnnxDeconv.Cli.Commands;

namespace OnnxDeconv.Cli.Bench;

/// <summary>
/// The published native plugin (libonnxdeconv.so, the dispatcher with its NativeAOT builds beside it): what Python and
/// C/C++ hosts load. The bench times it through ONNX Runtime's RegisterCustomOpLibrary beside the in-process plugin,
/// because a speed claim about the plugin must hold for what those hosts run, not only for the JIT.
/// Found from --plugin-so, else $ONNXDECONV_PLUGIN_SO, else the repository's publish folder above the working folder
/// or the tool (src/OnnxDeconv/bin/Release/net10.0/linux-x64/publish); "none" turns it off.
/// </summary>
public static class PublishedPlugin
{
    public const string EnvironmentVariable = "ONNXDECONV_PLUGIN_SO";
    public const string PublishCommand = "dotnet publish src/OnnxDeconv -c Release -r linux-x64";
    private static readonly string RelativeInRepo = System.IO.Path.Combine("src", "OnnxDeconv", "bin", "Release", "net10.0", "linux-x64", "publish", "libonnxdeconv.so");

    /// <summary>The library to load, or null when none was found (see <see cref="Missing"/>).</summary>
    public static string? Path { get; private set; }

    /// <summary>Why there is no <see cref="Path"/>: what to do to get the column.</summary>
    public static string Missing => s_declined
        ? "--plugin-so none: the published plugin is not timed"
        : $"no published libonnxdeconv.so found: run `{PublishCommand}` in the repository, or pass --plugin-so PATH (or set {EnvironmentVariable})";

    /// <summary>The value of --plugin-so (or the variable) that turns the column off.</summary>
    public const string None = "none";
    private static bool s_declined;

    /// <summary>Resolves <see cref="Path"/>; a path the user named that does not exist is a usage error (exit 3).</summary>
    public static void Resolve(string? explicitPath)
    {
        string? named = explicitPath ?? NullIfEmpty(Environment.GetEnvironmentVariable(EnvironmentVariable));
        s_declined = named == None;
        Path = null;
        if (s_declined) return;
        if (named is not null)
        {
            if (!File.Exists(named))
                throw new UsageException($"{(explicitPath is not null ? "--plugin-so" : EnvironmentVariable)} {named}: file not found ({PublishCommand} builds it)");
            Path = System.IO.Path.GetFullPath(named);
            return;
        }
        Path = new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory }.Select(FindAbove).FirstOrDefault(p => p is not null);
    }

    /// <summary>
    /// Which build the dispatcher picks on this machine (its OnnxDeconvVariant export, e.g. "…/libonnxdeconv-avx512.so
    /// (x86-64-v4; …), kernel Avx512"), or null without a <see cref="Path"/>.
    /// </summary>
    public static string? Variant()
    {
        if (Path is null) return null;
        try
        {
            IntPtr handle = System.Runtime.InteropServices.NativeLibrary.Load(Path);
            var f = System.Runtime.InteropServices.Marshal.GetDelegateForFunctionPointer<VariantFn>(
                System.Runtime.InteropServices.NativeLibrary.GetExport(handle, "OnnxDeconvVariant"));
            return System.Runtime.InteropServices.Marshal.PtrToStringUTF8(f()) ?? "(no description)";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return $"(cannot ask {Path}: {e.Message})";
        }
    }

    /// <summary><c>const char* OnnxDeconvVariant(void)</c> (src/OnnxDeconv/Native/dispatch.c).</summary>
    private delegate IntPtr VariantFn();

    private static string? FindAbove(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, RelativeInRepo);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
