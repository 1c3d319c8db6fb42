using System.Text.Json;
using OnnxDeconv.Cli;
using OnnxDeconv.Cli.Verification;
using OnnxDeconv.GraphRewrite.IO;
using static OnnxDeconv.Cli.Tests.VerifyFixtures;

namespace OnnxDeconv.Cli.Tests;

// optimize verifies at |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4 (float32 defaults).
// Rewrites are faked through CliHooks so these tests do not depend on the real lowering.
public sealed class OptimizeCommandTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    [Fact]
    public void Optimize_BrokenRewrite_RefusesToWrite_NoOutputNoTempFile()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var before = File.ReadAllBytes(input);
        int code; string stdout, stderr;
        using (CliHooks.Override(optimizer: BrokenRewrite))
            (code, stdout, stderr) = Run("optimize", input, "-o", _f.PathOf("out.onnx"));
        Assert.Equal(ExitCodes.VerificationFailed, code);
        Assert.False(File.Exists(_f.PathOf("out.onnx")));
        Assert.Equal(["in.onnx"], Directory.GetFiles(_f.Dir).Select(Path.GetFileName));
        Assert.Contains("NOT written", stdout);
        Assert.Contains("verification failed", stderr);
        Assert.Equal(before, File.ReadAllBytes(input));
    }

    [Fact]
    public void Optimize_FaithfulRewrite_WritesVerifiedModel_WithBeforeAfterTable()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var output = _f.PathOf("out.onnx");
        int code; string stdout;
        using (CliHooks.Override(optimizer: FaithfulRewrite))
            (code, stdout, _) = Run("optimize", input, "-o", output);
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Contains("Identity", ModelIO.Load(output).Graph.Node.Select(n => n.OpType));
        Assert.Contains("| Identity", stdout);        // op counts before/after
        Assert.Contains("up1", stdout);               // node table
        Assert.Contains("4.00x fewer", stdout);
        Assert.Contains("PASS: 1/1 output(s)", stdout);
        Assert.Contains($"verified: wrote {output}", stdout);
    }

    [Fact]
    public void Optimize_NoVerify_WritesEvenABrokenRewrite_AndSaysUnverified()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        int code; string stdout;
        using (CliHooks.Override(optimizer: BrokenRewrite))
            (code, stdout, _) = Run("optimize", input, "-o", _f.PathOf("out.onnx"), "--no-verify");
        Assert.Equal(ExitCodes.Ok, code);
        Assert.True(File.Exists(_f.PathOf("out.onnx")));
        Assert.Contains("verification skipped (--no-verify)", stdout);
        Assert.Contains("UNVERIFIED", stdout);
    }

    [Fact]
    public void Optimize_NothingToRewrite_WritesByteIdenticalCopy_AndSaysSo()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        int code; string stdout;
        using (CliHooks.Override(optimizer: (m, _) => new(m, [])))
            (code, stdout, _) = Run("optimize", input, "-o", _f.PathOf("out.onnx"));
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(_f.PathOf("out.onnx")));
        Assert.Contains("nothing to rewrite", stdout);
        Assert.Contains("byte-identical", stdout);
    }

    [Fact]
    public void Optimize_OutputEqualsInput_WithoutInPlace_ExitsThree_WithInPlace_Overwrites()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var before = File.ReadAllBytes(input);
        using (CliHooks.Override(optimizer: FaithfulRewrite))
        {
            var (code, _, stderr) = Run("optimize", input, "-o", Path.Combine(_f.Dir, ".", "in.onnx"));
            Assert.Equal(ExitCodes.InvalidInput, code);
            Assert.Contains("--in-place", stderr);
            Assert.Equal(before, File.ReadAllBytes(input));
            Assert.Equal(ExitCodes.InvalidInput, Run("optimize", input).Exit); // no -o at all

            Assert.Equal(ExitCodes.Ok, Run("optimize", input, "--in-place").Exit);
            Assert.Contains("Identity", ModelIO.Load(input).Graph.Node.Select(n => n.OpType));
        }
    }

    [Fact]
    public void Optimize_CorruptOrMissingInput_ExitsThreeNamingTheFile()
    {
        var bad = _f.PathOf("corrupt.onnx");
        File.WriteAllBytes(bad, [0x0a, 0xff, 0xff, 0x01]);
        var (code, _, stderr) = Run("optimize", bad, "-o", _f.PathOf("out.onnx"));
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("corrupt.onnx", stderr);
        Assert.False(File.Exists(_f.PathOf("out.onnx")));
        var missing = Run("optimize", _f.PathOf("nope.onnx"), "-o", _f.PathOf("out.onnx"));
        Assert.Equal(ExitCodes.InvalidInput, missing.Exit);
        Assert.Contains("nope.onnx", missing.Err);
    }

    [Fact]
    public void Optimize_Json_IsMachineReadable()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        int code; string stdout;
        using (CliHooks.Override(optimizer: BrokenRewrite))
            (code, stdout, _) = Run("optimize", input, "-o", _f.PathOf("out.onnx"), "--json");
        Assert.Equal(ExitCodes.VerificationFailed, code);
        using var doc = JsonDocument.Parse(stdout);
        var r = doc.RootElement;
        Assert.False(r.GetProperty("written").GetBoolean());
        Assert.True(r.GetProperty("changed").GetBoolean());
        Assert.Equal(1, r.GetProperty("opsBefore").GetProperty("ConvTranspose").GetInt32());
        Assert.Equal("up1", r.GetProperty("nodes")[0].GetProperty("node").GetString());
        Assert.False(r.GetProperty("verification").GetProperty("passed").GetBoolean());
    }
}

public sealed class OptimizeCommandShapeTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    [Fact]
    public void Optimize_SymbolicInputWithoutShape_ExitsThree_NothingWritten_WithShape_Verifies()
    {
        var input = _f.Save(ConvTranspose(symbolic: true), "in.onnx");
        var output = _f.PathOf("out.onnx");
        using (CliHooks.Override(optimizer: FaithfulRewrite))
        {
            // The batch would be taken as 1 (docs/shapes.md); H has no value: exit 3 naming it, nothing written.
            var (code, _, stderr) = Run("optimize", input, "-o", output);
            Assert.Equal(ExitCodes.InvalidInput, code);
            Assert.Contains("input 'X' has symbolic dim 2 ('H')", stderr);
            Assert.Contains("--shape X=1,2,64,64", stderr);
            Assert.Contains("not written", stderr);
            Assert.False(File.Exists(output));

            var ok = Run("optimize", input, "-o", output, "--shape", "X=1,2,6,6");
            Assert.Equal(ExitCodes.Ok, ok.Exit);
            Assert.Contains("[1,3,13,13]", ok.Out);
            Assert.True(File.Exists(output));
        }
    }

    [Fact]
    public void Optimize_SymbolicBatchOnly_WithoutShape_VerifiesAtBatchOne_AndSaysSo()
    {
        var input = _f.Save(ConvTranspose(batchOnly: true), "in.onnx");
        var output = _f.PathOf("out.onnx");
        using (CliHooks.Override(optimizer: FaithfulRewrite))
        {
            var (code, stdout, stderr) = Run("optimize", input, "-o", output, "--json");
            Assert.True(code == ExitCodes.Ok, stdout + stderr);
            Assert.True(stdout.Replace("\\u0027", "'").Contains("batch dimension 'N' taken as 1"), stdout); // JSON escapes quotes
            Assert.True(File.Exists(output));
        }
    }
}

public sealed class OptimizeCommandOutputTests : IDisposable
{
    private readonly VerifyFixtures _f = new();
    public void Dispose() => _f.Dispose();

    [Fact]
    public void Optimize_OutputPathIsAFolder_ExitsThreeNamingIt_LeavesNoTempFile()
    {
        var input = _f.Save(ConvTranspose(), "in.onnx");
        var folder = Directory.CreateDirectory(_f.PathOf("taken")).FullName;
        int code; string stderr;
        using (CliHooks.Override(optimizer: FaithfulRewrite))
            (code, _, stderr) = Run("optimize", input, "-o", folder);
        Assert.Equal(ExitCodes.InvalidInput, code);
        Assert.Contains("taken", stderr);
        Assert.Equal(["in.onnx"], Directory.GetFiles(_f.Dir).Select(Path.GetFileName));
    }
}
