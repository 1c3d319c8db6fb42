using System.Xml.Linq;
using Google.Protobuf;
using OnnxDeconv.GraphRewrite.BackendTests;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;
using OnnxDeconv.GraphRewrite.Pipeline;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.TestSupport;

namespace OnnxDeconv.GraphRewrite.Tests.Verification;

// Backend tests compare with the stored outputs at |a-b| <= atol + rtol*|b|, atol 1e-5, rtol 1e-4.
public class BackendTestRunnerTests
{
    private static BackendTestCase Case(string name) => Assert.Single(BackendTestCase.Discover(Path.Combine(RepoPaths.Conformance, name)));

    [Fact]
    public void Discover_CaseFolder_IsOneCase_ParentFolder_IsEveryCaseSorted()
    {
        var one = Case("test_convtranspose");
        Assert.Equal("test_convtranspose", one.Name);
        Assert.Single(one.DataSets);
        var all = BackendTestCase.Discover(RepoPaths.Conformance);
        Assert.True(all.Count >= 30);
        Assert.Equal(all.Select(c => c.Name).OrderBy(n => n, StringComparer.Ordinal), all.Select(c => c.Name));
    }

    [Fact]
    public void Discover_MissingOrEmptyFolder_NamesIt()
    {
        var e = Assert.Throws<VerificationInputException>(() => BackendTestCase.Discover("/no/such/dir"));
        Assert.Contains("/no/such/dir", e.Message);
        var dir = VerificationModels.TempDir();
        try { Assert.Contains(dir, Assert.Throws<VerificationInputException>(() => BackendTestCase.Discover(dir)).Message); }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("test_convtranspose_3d")]
    [InlineData("test_ConvTranspose2d")]
    [InlineData("test_depthtospace_crd_mode_example")]
    public void Run_ConformanceCase_MatchesStoredOutputs(string name)
    {
        var r = BackendTestRunner.Run(Case(name), new BackendTestOptions());
        Assert.True(r.Passed, r.Failure);
        Assert.NotEmpty(r.Outputs);
    }

    [Fact]
    public void Run_FreezeInputs_BindsAllButFirstAsInitializers_BeforeRewrite()
    {
        ModelProto? seen = null;
        var r = BackendTestRunner.Run(Case("test_convtranspose"), new BackendTestOptions
        {
            FreezeInputs = [],
            Rewrite = m => { seen = m; return new OptimizeResult(m, []); },
        });
        Assert.True(r.Passed, r.Failure);
        Assert.Equal(["W"], r.Frozen);
        Assert.NotNull(seen);
        Assert.Equal(["X"], seen.Graph.Input.Select(i => i.Name));
        var w = Assert.Single(seen.Graph.Initializer);
        Assert.Equal("W", w.Name);
        Assert.Equal(new long[] { 1, 2, 3, 3 }, w.Dims);
    }

    [Fact]
    public void Freeze_OldIrVersion_IsRaisedSoTheInitializerIsConstant()
    {
        var m = ModelIO.Load(Path.Combine(RepoPaths.Conformance, "test_convtranspose", "model.onnx"));
        m.IrVersion = 3;
        var w = Runtime.TensorValue.Float("W", [1], [2f]);
        var frozen = InputFreezer.Freeze(m, [w]);
        Assert.Equal(InputFreezer.MinIrVersionForPureInitializers, frozen.IrVersion);
        Assert.Equal(3, m.IrVersion); // the input model is not modified
        Assert.Equal(2, m.Graph.Input.Count);
        Assert.Throws<VerificationInputException>(() => InputFreezer.Select(["X", "W"], ["Q"]));
    }

    [Fact]
    public void Freeze_OldIrVersion_KeepsExistingInitializersConstant()
    {
        // IR 3 (old PyTorch export): W and B are initializers that are also listed as graph inputs, i.e. constants.
        var m = ModelIO.Load(Path.Combine(RepoPaths.Conformance, "test_ConvTranspose2d", "model.onnx"));
        Assert.True(m.IrVersion < InputFreezer.MinIrVersionForPureInitializers);
        var inits = m.Graph.Initializer.Select(t => t.Name).ToList();
        Assert.NotEmpty(inits);
        Assert.All(inits, n => Assert.Contains(m.Graph.Input, i => i.Name == n));

        var frozen = InputFreezer.Freeze(m, []);
        var index = new OnnxDeconv.GraphRewrite.Graph.GraphIndex(frozen);
        Assert.All(inits, n => Assert.True(index.IsConstant(n), $"{n} must stay constant after the IR version is raised"));
        Assert.Equal(InputFreezer.RuntimeInputs(m), frozen.Graph.Input.Select(i => i.Name));

        // Negative: a model already at IR >= 4 keeps an initializer that is also an input overridable.
        var modern = m.Clone();
        modern.IrVersion = 8;
        var kept = InputFreezer.Freeze(modern, []);
        Assert.Equal(modern.Graph.Input.Count, kept.Graph.Input.Count);
    }

    [Fact]
    public void Run_BrokenRewrite_FailsAndSaysWhere()
    {
        var r = BackendTestRunner.Run(Case("test_ConvTranspose2d"), new BackendTestOptions
        {
            Rewrite = m =>
            {
                var w = m.Graph.Initializer.First(t => t.Dims.Count == 4);
                var data = Tensors.ToFloats(w).Select(v => v * 1.1f).ToArray();
                w.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
                w.FloatData.Clear();
                return new OptimizeResult(m, []);
            },
        });
        Assert.False(r.Passed);
        Assert.Contains("test_data_set_0/output_0.pb", r.Failure);
    }

    [Fact]
    public void Run_RewriteThatThrows_IsAFailedCase_NotACrash()
    {
        var r = BackendTestRunner.Run(Case("test_convtranspose"), new BackendTestOptions
        {
            Rewrite = _ => throw new InvalidOperationException("boom"),
        });
        Assert.False(r.Passed);
        Assert.Contains("boom", r.Failure);
    }

    [Fact]
    public void JUnit_HasOneTestcasePerCase_AndFailures()
    {
        var pass = BackendTestRunner.Run(Case("test_convtranspose"), new BackendTestOptions());
        var fail = BackendTestRunner.Run(Case("test_convtranspose_1d"), new BackendTestOptions { Rewrite = _ => throw new InvalidOperationException("a <bad> & \"quoted\" reason") });
        var dir = VerificationModels.TempDir();
        try
        {
            var path = Path.Combine(dir, "junit.xml");
            JUnitReport.Write(path, [pass, fail]);
            var doc = XDocument.Load(path);
            var suite = doc.Root!.Element("testsuite")!;
            Assert.Equal("2", suite.Attribute("tests")!.Value);
            Assert.Equal("1", suite.Attribute("failures")!.Value);
            var cases = suite.Elements("testcase").ToList();
            Assert.Equal(["test_convtranspose", "test_convtranspose_1d"], cases.Select(c => c.Attribute("name")!.Value));
            Assert.Null(cases[0].Element("failure"));
            Assert.Contains("a <bad> & \"quoted\" reason", cases[1].Element("failure")!.Attribute("message")!.Value);
            Assert.Single(Directory.GetFiles(dir)); // no temp file left
        }
        finally { Directory.Delete(dir, true); }
    }
}

public class BackendTestRunnerNoDataTests
{
    [Fact]
    public void Run_CaseWithoutStoredData_WithRewrite_ComparesRewrittenWithOriginal_WithoutRewrite_Fails()
    {
        var dir = VerificationModels.TempDir();
        try
        {
            var caseDir = Directory.CreateDirectory(Path.Combine(dir, "nodata")).FullName;
            VerificationModels.Save(VerificationModels.ConvTranspose(dims: [-1, 2, -1, -1]), caseDir);
            var testCase = Assert.Single(BackendTestCase.Discover(dir));
            Assert.Empty(testCase.DataSets);

            var plain = BackendTestRunner.Run(testCase, new BackendTestOptions());
            Assert.False(plain.Passed);
            Assert.Contains("no test_data_set_", plain.Failure);

            var shapes = ShapeOverrides.Parse(["X=1,2,4,4", "other_case_input=3"]);
            var same = BackendTestRunner.Run(testCase, new BackendTestOptions { Rewrite = m => new OptimizeResult(m, []), Shapes = shapes });
            Assert.True(same.Passed, same.Failure);
            Assert.Contains("rewritten vs original", same.Note);

            var broken = BackendTestRunner.Run(testCase, new BackendTestOptions
            {
                Shapes = shapes,
                Rewrite = m => new OptimizeResult(VerificationModels.ConvTranspose(weightScale: 1.1f, dims: [-1, 2, -1, -1]), []),
            });
            Assert.False(broken.Passed);
            Assert.Contains("output 'Y'", broken.Failure);
        }
        finally { Directory.Delete(dir, true); }
    }
}
