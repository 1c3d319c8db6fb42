using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using OnnxDeconv.Plugin;

namespace OnnxDeconv.Tests.Plugin;

/// <summary>The slot indices and the OrtCustomOp layout we hard-code, re-derived from the header in the ORT package.</summary>
public sealed class OrtApiHeaderTests
{
    private static string Header => File.ReadAllText(Path.Combine(PluginTestKit.OrtIncludeDir, "onnxruntime_c_api.h"));

    private static string StructBody(string header, string name)
    {
        int start = header.IndexOf($"struct {name} {{", StringComparison.Ordinal);
        Assert.True(start >= 0, $"struct {name} not found in onnxruntime_c_api.h");
        int end = header.IndexOf("\n};", start, StringComparison.Ordinal);
        string body = header[start..end];
        body = Regex.Replace(body, @"/\*.*?\*/", "", RegexOptions.Singleline);
        return Regex.Replace(body, @"//[^\n]*", "");
    }

    /// <summary>Every function pointer of struct OrtApi in declaration order (its slot index).</summary>
    internal static List<string> OrtApiFunctions(string header)
    {
        var pattern = new Regex(@"ORT_API2_STATUS\(\s*(\w+)|ORT_API_T\(\s*[^,]+,\s*(\w+)|ORT_CLASS_RELEASE\(\s*(\w+)\s*\)|\(\s*ORT_API_CALL\s*\*\s*(\w+)\s*\)");
        return pattern.Matches(StructBody(header, "OrtApi")).Select(m =>
            m.Groups[1].Success ? m.Groups[1].Value
            : m.Groups[2].Success ? m.Groups[2].Value
            : m.Groups[3].Success ? "Release" + m.Groups[3].Value
            : m.Groups[4].Value).ToList();
    }

    [Fact]
    public void OrtApiSlots_MatchDeclarationOrderInHeader()
    {
        var functions = OrtApiFunctions(Header);
        Assert.True(functions.Count > 300, $"parsed only {functions.Count} OrtApi entries: the parser no longer understands the header");
        Assert.Equal(functions.Count, functions.Distinct().Count());
        foreach (var (name, slot) in OrtApiSlots.All)
        {
            int index = functions.IndexOf(name);
            Assert.True(index >= 0, $"{name} is not in struct OrtApi");
            Assert.True(index == slot, $"{name}: header slot {index}, OrtApiSlots says {slot}");
        }
    }

    [Fact]
    public void OrtApiSlots_DocumentedFactsAgree()
    {
        // Spot checks against DESIGN.md section 3, so a parser bug cannot make the test above vacuous.
        var f = OrtApiFunctions(Header);
        Assert.Equal("CreateStatus", f[0]);
        Assert.Equal("CreateCustomOpDomain", f[26]);
        Assert.Equal("ReleaseStatus", f[93]);
        Assert.Equal("RegisterCustomOpsLibrary_V2", f[228]);
    }

    [Fact]
    public void OrtCustomOpNative_FieldOrderAndSizeMatchHeader()
    {
        var body = StructBody(Header, "OrtCustomOp");
        var headerFields = new List<string> { "version" };
        headerFields.AddRange(Regex.Matches(body, @"\(\s*ORT_API_CALL\s*\*\s*(\w+)\s*\)").Select(m => m.Groups[1].Value));
        var ours = typeof(OrtCustomOpNative).GetFields().Select(f => f.Name).ToList();
        Assert.Equal(headerFields.Select(n => n.ToLowerInvariant()), ours.Select(n => n.ToLowerInvariant()));
        Assert.Equal(208, Marshal.SizeOf<OrtCustomOpNative>());
    }

    /// <summary>
    /// The release whose "\since Version 1.N" the doc comment right above <paramref name="name"/>'s declaration in
    /// struct OrtApi names (0 when it names none: the oldest entries carry no such line).
    /// </summary>
    internal static int SinceMinor(string header, string name)
    {
        int start = header.IndexOf("struct OrtApi {", StringComparison.Ordinal);
        var decl = new Regex($@"ORT_API2_STATUS\(\s*{name}\b|ORT_API_T\(\s*[^,]+,\s*{name}\b|ORT_CLASS_RELEASE\(\s*{name.Replace("Release", "")}\s*\)|\(\s*ORT_API_CALL\s*\*\s*{name}\s*\)");
        var m = decl.Match(header, start);
        Assert.True(m.Success, $"{name} not declared in struct OrtApi");
        int previousEnd = Math.Max(start, header.LastIndexOf(");", m.Index, StringComparison.Ordinal));
        string comment = header[previousEnd..m.Index];
        var since = Regex.Matches(comment, @"\\since Version 1\.(\d+)");
        return since.Count == 0 ? 0 : int.Parse(since[^1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void EveryOrtApiEntryWeCall_ExistsInTheVersionWeAskFor()
    {
        // The plugin asks ONNX Runtime for OrtApi version RequiredVersion (not the header's newest) so it loads on
        // every runtime from that release on; an entry newer than that would be read past the end of an older table.
        var since = OrtApiSlots.All.Keys.ToDictionary(n => n, n => SinceMinor(Header, n));
        foreach (var (name, minor) in since)
            Assert.True(minor <= OrtApi.RequiredVersion, $"{name} arrived in ONNX Runtime 1.{minor}; OrtApi.RequiredVersion is {OrtApi.RequiredVersion}");
        // Not vacuous: the parser finds the 1.17 entries, and a known newer entry reads as newer.
        Assert.Equal(17, since[nameof(OrtApiSlots.KernelContext_ParallelFor)]);
        Assert.Equal(14, since[nameof(OrtApiSlots.RegisterCustomOpsLibrary_V2)]);
        Assert.Equal(15, SinceMinor(Header, "GetBuildInfoString"));
        Assert.Contains(OrtApiFunctions(Header).Skip(300), n => SinceMinor(Header, n) > OrtApi.RequiredVersion);
        Assert.Equal(OrtApi.OldestRuntime, $"1.{OrtApi.RequiredVersion}");
    }
}
