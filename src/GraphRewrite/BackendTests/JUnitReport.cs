using System.Globalization;
using System.Text;
using System.Xml;
using OnnxDeconv.GraphRewrite.IO;

namespace OnnxDeconv.GraphRewrite.BackendTests;

/// <summary>JUnit XML (the de-facto CI format: one testsuite, one testcase per backend-test folder), written atomically.</summary>
public static class JUnitReport
{
    public static string ToXml(IReadOnlyList<BackendTestResult> results, string suiteName = "onnx-deconv test")
    {
        // A UTF-8 stream (not a StringWriter) so the declaration says encoding="utf-8", matching the bytes written.
        var stream = new MemoryStream();
        var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false) };
        using (var w = XmlWriter.Create(stream, settings))
        {
            w.WriteStartDocument();
            w.WriteStartElement("testsuites");
            w.WriteStartElement("testsuite");
            w.WriteAttributeString("name", suiteName);
            w.WriteAttributeString("tests", results.Count.ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("failures", results.Count(r => !r.Passed).ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("errors", "0");
            w.WriteAttributeString("time", Seconds(results.Aggregate(TimeSpan.Zero, (t, r) => t + r.Elapsed)));
            foreach (var r in results)
            {
                w.WriteStartElement("testcase");
                w.WriteAttributeString("classname", Path.GetFileName(Path.GetDirectoryName(r.Case.Directory)) ?? "");
                w.WriteAttributeString("name", r.Case.Name);
                w.WriteAttributeString("time", Seconds(r.Elapsed));
                if (!r.Passed)
                {
                    w.WriteStartElement("failure");
                    w.WriteAttributeString("message", r.Failure ?? "failed");
                    w.WriteString($"{r.Case.Directory}: {r.Failure}");
                    w.WriteEndElement();
                }
                w.WriteEndElement();
            }
            w.WriteEndElement();
            w.WriteEndElement();
            w.WriteEndDocument();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static void Write(string path, IReadOnlyList<BackendTestResult> results) =>
        AtomicFile.WriteAllText(path, ToXml(results));

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
}
