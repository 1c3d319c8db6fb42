using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Rewrites;
using OnnxDeconv.GraphRewrite.Runtime;

using OnnxDeconv.TestSupport;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>
/// The NativeAOT libonnxdeconv.so: loaded by ONNX Runtime from .NET (RegisterCustomOpLibraryV2 and the ORT-owned
/// RegisterCustomOpLibrary) and from a C host, several sessions in one process, outputs within
/// |a-b| &lt;= 1e-5 + 1e-4*|b| of ORT's own ConvTranspose (ORT_DISABLE_ALL).
/// </summary>
public sealed class NativePluginTests(NativePluginFixture native) : IClassFixture<NativePluginFixture>
{
    [Fact]
    public void NativeLibrary_ExportsRegisterCustomOps()
    {
        IntPtr handle = NativeLibrary.Load(native.Library);
        Assert.True(NativeLibrary.TryGetExport(handle, "RegisterCustomOps", out var entry) && entry != IntPtr.Zero);
        NativeLibrary.Free(handle);
    }

    [Fact]
    public void NativeLibrary_LoadedFromDotNet_RunsSeveralSessionsInOneProcess()
    {
        var (model, x) = PluginConcurrencyTests.DcganLikeModel();
        var expected = PluginTestKit.RunSingle(model, x);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        float[]? first = null;
        for (int round = 0; round < 4; round++)
        {
            IntPtr handle = IntPtr.Zero;
            // Alternate: a handle we own (V2) and one ONNX Runtime owns and dlcloses with the options (-z nodelete keeps it).
            var options = new OrtRunOptions
            {
                IntraOpThreads = 1 + round % 2,
                Configure = so =>
                {
#pragma warning disable CS0618 // RegisterCustomOpLibraryV2 is what the brief asks to exercise
                    if (round % 2 == 0) so.RegisterCustomOpLibraryV2(native.Library, out handle);
#pragma warning restore CS0618
                    else so.RegisterCustomOpLibrary(native.Library);
                },
            };
            float[] y;
            using (var runner = new OrtRunner(rewritten, options))
                y = runner.Run([x])[0].AsFloats();
            if (handle != IntPtr.Zero) NativeLibrary.Free(handle);
            PluginTestKit.AssertClose(expected, y, $"round {round}");
            first ??= y;
            Assert.True(first.AsSpan().SequenceEqual(y), $"round {round} differs bitwise from round 0");
        }
    }

    [Fact]
    public void NativeLibrary_BadInput_ReturnsErrorNotCrash()
    {
        var (model, _) = PluginConcurrencyTests.DcganLikeModel();
        model.Graph.Input[0] = OnnxDeconv.GraphRewrite.Graph.ModelBuilder.ValueInfo("X", OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType.Float, null);
        model.Graph.Output[0] = OnnxDeconv.GraphRewrite.Graph.ModelBuilder.ValueInfo("Y", OnnxDeconv.GraphRewrite.Onnx.TensorProto.Types.DataType.Float, null);
        var rewritten = ConvTransposeToPlugin.RewriteAll(model).Model;
        var bad = TensorValue.Float("X", [1, 5, 4, 4], new float[80]);
        var e = Assert.ThrowsAny<OnnxRuntimeException>(() => OrtRunner.RunOnce(rewritten, [bad],
            new OrtRunOptions { Configure = so => so.RegisterCustomOpLibrary(native.Library) }));
        Assert.Contains("in_channels is 16", e.Message);
    }

    [Fact]
    public void NativeLibrary_FromCHost_MatchesOrtOverSeveralRounds()
    {
        var (code, output) = RunCHost(native, rounds: 3, perturb: null);
        Assert.True(code == 0, $"C host exit {code}:\n{output}");
        Assert.Contains("ok: 3 rounds matched", output);
    }

    [Fact]
    public void CHost_DetectsWrongExpectedValues()
    {
        // The C host's check can fail: perturbed expected values must give exit 1.
        var (code, output) = RunCHost(native, rounds: 1, perturb: 17);
        Assert.True(code == 1, $"C host exit {code} (expected 1 = mismatch):\n{output}");
        Assert.Contains("element 17", output);
    }

    /// <summary>
    /// Writes the plugin-rewritten DCGAN-like model, its input and ONNX Runtime's expected output (optionally with one
    /// element perturbed) to a temp folder and runs the C host on them for <paramref name="rounds"/> load/unload rounds,
    /// with the pinned ONNX Runtime unless <paramref name="ortLibrary"/> names another, optionally under an emulator
    /// (<paramref name="emulator"/>: command and its arguments before the host).
    /// </summary>
    internal static (int Code, string Output) RunCHost(NativePluginFixture native, int rounds, int? perturb, string? ortLibrary = null,
        IReadOnlyDictionary<string, string>? environment = null, string[]? emulator = null, TimeSpan? timeout = null, string? plugin = null)
    {
        var (model, x) = PluginConcurrencyTests.DcganLikeModel();
        var expected = PluginTestKit.RunSingle(model, x);
        if (perturb is int i) expected[i] += 0.5f;
        var rewritten = ConvTransposeToPlugin.RewriteAll(model.Clone()).Model;
        string dir = Directory.CreateTempSubdirectory("onnxdeconv-chost-").FullName;
        try
        {
            string modelPath = Path.Combine(dir, "model.onnx"), inPath = Path.Combine(dir, "x.bin"), outPath = Path.Combine(dir, "expected.bin");
            ModelIO.Save(rewritten, modelPath);
            AtomicFile.WriteAllBytes(inPath, MemoryMarshal.AsBytes(x.AsFloats().AsSpan()).ToArray());
            AtomicFile.WriteAllBytes(outPath, MemoryMarshal.AsBytes(expected.AsSpan()).ToArray());
            var args = new List<string>(emulator?.Skip(1) ?? []) { native.Host, ortLibrary ?? Path.Combine(PluginTestKit.OrtNativeDir, "libonnxruntime.so"),
                plugin ?? native.Library, modelPath, inPath, outPath, rounds.ToString(System.Globalization.CultureInfo.InvariantCulture), "X", "Y" };
            args.AddRange(x.Dims.Select(d => d.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            string file = emulator?[0] ?? args[0];
            if (emulator is null) args.RemoveAt(0);
            return NativeBuild.Run(file, args, dir, timeout ?? TimeSpan.FromMinutes(2), environment);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
