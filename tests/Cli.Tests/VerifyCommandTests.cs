using System.Text.Json;
using OnnxDeconv.Cli;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

// verify compares at |a-b| <= atol + rtol*|b| with atol 1e-5, rtol 1e-4 (float32 defaults) unless --atol/--rtol say otherwise.
public sealed class VerifyCommandTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    [Fact]
    public void Verify_IdenticalModels_ExitsZeroAndPrintsPerOutputTable()
    {
        var a = _f.Save(ConvTranspose(), "a.onnx");
        var b = _f.Save(ConvTranspose(), "b.onnx");
        var (code, stdout, _) = Run("verify", a, b);
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Contains("| Y ", stdout);
        Assert.Contains("[1,3,11,11]", stdout);
        Assert.Contains("PASS: 1/1 output(s)", stdout);
    }

    [Fact]
    public void Verify_PerturbedModel_ExitsTwo()
    {
        var a = _f.Save(ConvTranspose(), "a.onnx");
        var b = _f.Save(ConvTranspose(weightScale: 1.001f), "b.onnx");
        var (code, stdout, stderr) = Run("verify", a, b);
        Assert.Equal(ExitCodes.VerificationFailed, code);
        Assert.Contains("FAIL", stdout);
        Assert.Contains("does not match", stderr);
        // A loose enough tolerance accepts the same pair.
        Assert.Equal(ExitCodes.Ok, Run("verify", a, b, "--atol", "0.1", "--rtol", "0.1").Exit);
    }

    [Fact]
    public void Verify_Json_ReportsErrorsPerOutput()
    {
        var a = _f.Save(ConvTranspose(), "a.onnx");
        var b = _f.Save(ConvTranspose(weightScale: 1.01f), "b.onnx");
        var (code, stdout, _) = Run("verify", a, b, "--json", "--seed", "5");
        Assert.Equal(ExitCodes.VerificationFailed, code);
        using var doc = JsonDocument.Parse(stdout);
        var v = doc.RootElement.GetProperty("verification");
        Assert.False(v.GetProperty("passed").GetBoolean());
        Assert.Equal("random, seed 5", v.GetProperty("inputSource").GetString());
        var y = v.GetProperty("outputs")[0];
        Assert.Equal("Y", y.GetProperty("name").GetString());
        Assert.True(y.GetProperty("maxAbsError").GetDouble() > 0);
        Assert.Equal(4, y.GetProperty("worstIndex").GetArrayLength());
    }

    [Fact]
    public void Verify_CorruptModel_ExitsThreeNamingTheFile()
    {
        var a = _f.Save(ConvTranspose(), "a.onnx");
        var bad = _f.PathOf("corrupt.onnx");
        File.WriteAllBytes(bad, [0x0a, 0xff, 0xff, 0x01, 0x02]);
        var (code, _, stderr) = Run("verify", a, bad);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("corrupt.onnx", stderr);
        var missing = Run("verify", _f.PathOf("missing.onnx"), a);
        Assert.Equal(ExitCodes.InvalidInput, missing.Exit);
        Assert.Contains("missing.onnx", missing.Err);
    }

    [Fact]
    public void Verify_SymbolicSpatialDims_NeedShape_AndSayWhichInputAndDim()
    {
        // docs/shapes.md: the batch would be taken as 1; H has no value, so verify stops naming it with an example.
        var a = _f.Save(ConvTranspose(symbolic: true), "a.onnx");
        var (code, _, stderr) = Run("verify", a, a);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("input 'X' has symbolic dim 2 ('H')", stderr);
        Assert.Contains("--shape X=1,2,64,64", stderr);
        var ok = Run("verify", a, a, "--shape", "X=1,2,8,8");
        Assert.Equal(ExitCodes.Ok, ok.Exit);
        Assert.Contains("[1,3,17,17]", ok.Out);
    }

    [Fact]
    public void Verify_SymbolicBatchOnly_TakenAsOne_AndSaysSo()
    {
        var a = _f.Save(ConvTranspose(batchOnly: true), "a.onnx");
        var (code, stdout, stderr) = Run("verify", a, a, "--json");
        Assert.True(code == ExitCodes.Ok, stdout + stderr);
        Assert.True(stdout.Replace("\\u0027", "'").Contains("batch dimension 'N' taken as 1"), stdout); // JSON escapes quotes
        Assert.Contains("[1,3,11,11]", stdout.Replace(" ", "").Replace("\n", ""));
    }

    [Fact]
    public void Verify_BadInputFile_ExitsThreeNamingIt()
    {
        var a = _f.Save(ConvTranspose(), "a.onnx");
        var inputs = Directory.CreateDirectory(_f.PathOf("inputs")).FullName;
        File.WriteAllBytes(Path.Combine(inputs, "input_0.pb"), [0xff, 0xff]);
        var (code, _, stderr) = Run("verify", a, a, "--inputs", inputs);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("input_0.pb", stderr);
    }
}
