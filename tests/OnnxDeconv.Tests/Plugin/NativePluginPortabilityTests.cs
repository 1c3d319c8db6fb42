using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.Kernels;
using OnnxDeconv.Plugin;
using OrtApi = OnnxDeconv.Plugin.OrtApi;

using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// What a non-.NET host gets from the published libonnxdeconv.so (issue 12): the build for its CPU's widest ISA (the
/// kernel variant the JIT picks in-process), a narrower one on request or on an older CPU (emulated by qemu-user), every
/// served ONNX Runtime release with load/run/unload/reload, and clear errors instead of crashes. Outputs are checked by
/// the C host against ONNX Runtime's own ConvTranspose (ORT_DISABLE_ALL) within |y-e| &lt;= 1e-5 + 1e-4*|e|.
/// </summary>
public sealed unsafe class NativePluginPortabilityTests(NativePluginFixture native) : IClassFixture<NativePluginFixture>
{
    [Fact]
    public void PublishedLibrary_RunsTheKernelVariantTheJitPicksOnThisCpu()
    {
        // auto times the plugin in-process: the deployed .so must run the same kernel variant or its timing is wrong.
        var expected = KernelIsaSelector.Detect(Environment.GetEnvironmentVariable(KernelIsaSelector.EnvironmentVariable), out _);
        IntPtr handle = NativeLibrary.Load(native.Library);
        try
        {
            var kernelIsa = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "OnnxDeconvKernelIsa");
            var variant = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(handle, "OnnxDeconvVariant");
            string description = Marshal.PtrToStringUTF8((IntPtr)variant()) ?? "";
            Assert.True((int)expected == kernelIsa(), $"in-process kernel {expected}, published .so: {description}");
            string file = expected switch { KernelIsa.Avx512 => "avx512", KernelIsa.Avx2 => "avx2", _ => "baseline" };
            Assert.Contains($"libonnxdeconv-{file}.so", description);
            Assert.EndsWith($"kernel {expected}", description);
        }
        finally { NativeLibrary.Free(handle); }
    }

    public static TheoryData<string> RequestedVariants => new(["avx512", "avx2", "vector", "scalar"]);

    [Theory]
    [MemberData(nameof(RequestedVariants))]
    public void RequestedVariant_LoadsItsBuildAndMatchesOrt(string requested)
    {
        // Every build and kernel variant through the real .so, as ONNXDECONV_ISA selects it (where this CPU runs it).
        var isa = Enum.Parse<KernelIsa>(requested, ignoreCase: true);
        var (code, output) = NativePluginTests.RunCHost(native, rounds: 2, perturb: null,
            environment: new Dictionary<string, string> { ["ONNXDECONV_ISA"] = requested, ["ONNXDECONV_VERBOSE"] = "1" });
        Assert.True(code == 0, $"C host exit {code}:\n{output}");
        Assert.Contains("ok: 2 rounds matched", output);
        var got = KernelIsaSelector.IsSupported(isa) ? isa : KernelIsaSelector.Supported[0];
        Assert.Contains($"kernel {got}", output);
        Assert.Contains("onnxdeconv: loaded ", output); // ONNXDECONV_VERBOSE's line on stderr
    }

    [Fact]
    public void UnknownRequestedVariant_FallsBackToTheWidest()
    {
        var (code, output) = NativePluginTests.RunCHost(native, rounds: 1, perturb: null,
            environment: new Dictionary<string, string> { ["ONNXDECONV_ISA"] = "sse9" });
        Assert.True(code == 0, $"C host exit {code}:\n{output}");
        Assert.Contains($"kernel {KernelIsaSelector.Supported[0]}", output);
    }

    public static TheoryData<string> Releases => new(NativePluginFixture.ReleaseVersions);

    [Theory]
    [MemberData(nameof(Releases))]
    public void EveryServedOrtRelease_LoadsRunsUnloadsAndReloads(string version)
    {
        // 4 rounds: V2 (ONNX Runtime dlcloses) and legacy registration (the host dlcloses, as Python does), twice each.
        var (code, output) = NativePluginTests.RunCHost(native, rounds: 4, perturb: null, ortLibrary: native.OrtLibrary(version));
        Assert.True(code == 0, $"C host with ONNX Runtime {version}: exit {code}:\n{output}");
        Assert.Contains($"onnxruntime: {version}", output);
        Assert.Contains("ok: 4 rounds matched", output);
    }

    public static TheoryData<string, string> OlderCpus => new()
    {
        { "Haswell", "avx2" },   // AVX2 + FMA, no AVX-512
        { "Nehalem", "baseline" }, // SSE4.2, no AVX
    };

    [Theory]
    [MemberData(nameof(OlderCpus))]
    public void OlderCpu_GetsTheWidestBuildItRunsAndMatchesOrt(string cpu, string build)
    {
        // qemu-user emulates the CPU (cpuid included), so the dispatcher must choose a narrower build and never run
        // an instruction the CPU lacks (qemu raises SIGILL on one). Emulation is slow: one round, a small model.
        var (code, output) = NativePluginTests.RunCHost(native, rounds: 2, perturb: null, emulator: [native.Qemu, "-cpu", cpu],
            timeout: TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"C host under qemu -cpu {cpu}: exit {code}:\n{output}");
        Assert.Contains($"libonnxdeconv-{build}.so", output);
        Assert.Contains($"CPU {(build == "avx2" ? "x86-64-v3" : "x86-64-v2")}", output);
        Assert.Contains("ok: 2 rounds matched", output);
    }

    [Fact]
    public void RequestForAvx512OnAnAvx2Cpu_IsRefusedInFavourOfTheAvx2Build()
    {
        var (code, output) = NativePluginTests.RunCHost(native, rounds: 1, perturb: null, emulator: [native.Qemu, "-cpu", "Haswell"],
            environment: new Dictionary<string, string> { ["ONNXDECONV_ISA"] = "avx512" }, timeout: TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"C host under qemu -cpu Haswell with ONNXDECONV_ISA=avx512: exit {code}:\n{output}");
        Assert.Contains("libonnxdeconv-avx2.so", output);
        Assert.Contains("ONNXDECONV_ISA asks for more than this CPU runs", output);
        Assert.Contains("ok: 1 rounds matched", output);
    }

    [Fact]
    public void Avx512BuildLoadedDirectlyOnAnAvx2Cpu_DoesNotRun()
    {
        // The emulation is real: bypassing the dispatcher, the x86-64-v4 build cannot run as a Haswell, so the
        // passing runs above did choose a narrower build rather than pass by accident.
        string wide = Path.Combine(Path.GetDirectoryName(native.Library)!, "libonnxdeconv-avx512.so");
        var (code, output) = NativePluginTests.RunCHost(native, rounds: 1, perturb: null, emulator: [native.Qemu, "-cpu", "Haswell"],
            timeout: TimeSpan.FromMinutes(5), plugin: wide);
        Assert.True(code != 0 && !output.Contains("rounds matched"), $"the AVX-512 build ran on an emulated Haswell (exit {code}):\n{output}");
    }

    [Fact]
    public void DispatcherWithoutItsBuilds_IsAClearOrtErrorNotACrash()
    {
        // A host that copied libonnxdeconv.so alone: registration fails with a status naming the missing file.
        string dir = Directory.CreateTempSubdirectory("onnxdeconv-lonely-").FullName;
        try
        {
            string lonely = Path.Combine(dir, "libonnxdeconv.so");
            File.Copy(native.Library, lonely);
            var (model, x) = PluginConcurrencyTests.DcganLikeModel();
            var rewritten = ConvTransposeToPlugin.RewriteAll(model).Model;
            var e = Assert.ThrowsAny<OnnxRuntimeException>(() => OrtRunner.RunOnce(rewritten, [x],
                new OrtRunOptions { Configure = so => so.RegisterCustomOpLibrary(lonely) }));
            Assert.Contains("cannot load", e.Message);
            Assert.Contains(Path.Combine(dir, "libonnxdeconv-"), e.Message);
            Assert.Contains("ship it beside libonnxdeconv.so", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    // ---- API version negotiation, against a fake OrtApiBase (no served runtime is too old) ----

    private static string? s_statusMessage;
    private static uint s_newestOffered;

    [UnmanagedCallersOnly] private static IntPtr FakeGetApi(uint version) => version <= s_newestOffered ? (IntPtr)s_fakeTable : IntPtr.Zero;
    [UnmanagedCallersOnly] private static byte* FakeVersionString() => s_fakeVersion;
    [UnmanagedCallersOnly] private static IntPtr FakeCreateStatus(int code, byte* message)
    {
        s_statusMessage = $"{code}: {Marshal.PtrToStringUTF8((IntPtr)message)}";
        return 0x5157;
    }

    private static readonly void** s_fakeTable = MakeTable();
    private static readonly byte* s_fakeVersion = (byte*)Marshal.StringToCoTaskMemUTF8("1.16.3");

    private static void** MakeTable()
    {
        var t = (void**)NativeMemory.AllocZeroed(1, (nuint)sizeof(void*));
        t[0] = (delegate* unmanaged<int, byte*, IntPtr>)&FakeCreateStatus; // slot 0: CreateStatus
        return t;
    }

    private static IntPtr FakeBase()
    {
        var b = (void**)NativeMemory.Alloc(2, (nuint)sizeof(void*)); // struct OrtApiBase { GetApi; GetVersionString; }
        b[0] = (delegate* unmanaged<uint, IntPtr>)&FakeGetApi;
        b[1] = (delegate* unmanaged<byte*>)&FakeVersionString;
        return (IntPtr)b;
    }

    [Fact]
    public void RuntimeOlderThanRequiredApi_IsRefusedWithTheVersionsNamed()
    {
        IntPtr b = FakeBase();
        try
        {
            s_newestOffered = OrtApi.RequiredVersion - 1; // an ONNX Runtime 1.16
            var e = Assert.Throws<OrtCallException>(() => OrtApi.FromBase(b));
            Assert.Contains("ONNX Runtime 1.16.3 does not offer OrtApi version 17", e.Message);
            Assert.Contains("needs ONNX Runtime 1.17 or newer", e.Message);
            // ...and a status can still be made to carry that message back to the host.
            var statusApi = OrtApi.ForStatus(b);
            Assert.NotNull(statusApi);
            Assert.Equal(0x5157, statusApi.CreateStatus(OrtErrorCode.Fail, e.Message));
            Assert.Equal($"1: {e.Message}", s_statusMessage);
        }
        finally { NativeMemory.Free((void*)b); }
    }

    [Fact]
    public void RuntimeOfferingRequiredApi_IsAskedForExactlyThatVersion()
    {
        IntPtr b = FakeBase();
        try
        {
            s_newestOffered = 40; // a runtime newer than any header we know: we still bind to the oldest sufficient table
            var api = OrtApi.FromBase(b);
            Assert.Equal(OrtApi.RequiredVersion, api.Version);
            Assert.Equal((IntPtr)s_fakeTable, api.Table);
        }
        finally { NativeMemory.Free((void*)b); }
    }
}
