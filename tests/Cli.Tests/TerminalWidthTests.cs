using System.Diagnostics;
using OnnxDeconv.Cli.Output;
using OnnxDeconv.TestSupport;
using static OnnxDeconv.Cli.Tests.CliHarness;

namespace OnnxDeconv.Cli.Tests;

/// <summary>Tables fit the terminal (COLUMNS, else 120 when not a TTY): wrapped at words, names shortened in the middle, full names in --json.</summary>
public class TerminalWidthTests
{
    private static readonly string Dcgan = Path.Combine(RepoPaths.DemoModels, "dcgan_generator.onnx");
    private static readonly string[] DcganNodes = ["/main/main.0/ConvTranspose", "/main/main.3/ConvTranspose", "/main/main.6/ConvTranspose", "/main/main.9/ConvTranspose", "/main/main.12/ConvTranspose"];

    private static bool IsTableLine(string l) => l.Length > 0 && "│╭╰├|+".Contains(l[0]);

    private static List<string> TableLines(string output) => [.. output.Split('\n').Select(l => l.TrimEnd('\r')).Where(IsTableLine)];

    [Theory]
    [InlineData(80)]
    [InlineData(100)]
    [InlineData(160)]
    public void Info_tables_fit_the_width_without_truncated_headers_or_split_words(int columns)
    {
        var r = RunAt(columns.ToString(), ["info", Dcgan]);
        Assert.True(r.Code == 0, r.ToString());
        var lines = TableLines(r.Out);
        Assert.NotEmpty(lines);
        Assert.All(lines, l => Assert.True(l.Length <= columns, $"{l.Length} > {columns}: {l}"));
        Assert.DoesNotContain("ker...", r.Out);
        // Every attribute is there, as a column or once under the table when equal in every row.
        foreach (var h in new[] { "kernel", "strides", "dilations", "output_padding", "auto_pad", "MACs", "note" }) Assert.Contains(h, r.Out);
        // Values are whole words: the MACs and shapes are never split.
        Assert.Contains("2,097,152", r.Out);
        Assert.Contains("1x16x32x32", r.Out);
    }

    [Fact]
    public void Wide_terminals_show_full_names_and_narrow_ones_shorten_them_in_the_middle_keeping_them_apart()
    {
        var wide = RunAt("160", ["info", Dcgan]).Out;
        Assert.All(DcganNodes, n => Assert.Contains(n, wide));

        var narrow = RunAt("80", ["info", Dcgan]).Out;
        var shortened = TableLines(narrow).Select(l => l.Split('│', StringSplitOptions.TrimEntries)).Where(c => c.Length > 2 && c[1].StartsWith("/main", StringComparison.Ordinal)).Select(c => c[1]).ToList();
        Assert.Equal(5, shortened.Count);
        Assert.All(shortened, s => Assert.Contains("...", s));
        Assert.Equal(5, shortened.Distinct().Count());
        Assert.Contains("same in every row: kernel [4, 4]", narrow);

        // --json never shortens.
        var json = RunAt("80", ["info", Dcgan, "--json"]).Json();
        Assert.Equal(DcganNodes, json.GetProperty("convTranspose").EnumerateArray().Select(n => n.GetProperty("name").GetString()));
    }

    [Theory]
    [InlineData(80)]
    [InlineData(100)]
    [InlineData(160)]
    public void Optimize_and_verify_tables_fit_the_width(int columns)
    {
        using var tmp = new TempDir();
        var r = RunAt(columns.ToString(), ["optimize", Dcgan, "-o", tmp.File("out.onnx"), "--target", "portable"]);
        Assert.True(r.Code == 0, r.ToString());
        Assert.All(TableLines(r.Out), l => Assert.True(l.Length <= columns, $"{l.Length} > {columns}: {l}"));
        Assert.Contains("/main/main.12/ConvTranspose", r.Out);  // names fit whole in these layouts
        Assert.Contains("BatchNormalization", r.Out);
        Assert.Contains("PASS: 1/1 output(s)", r.Out);

        var v = RunAt(columns.ToString(), ["verify", Dcgan, tmp.File("out.onnx")]);
        Assert.True(v.Code == 0, v.ToString());
        Assert.All(TableLines(v.Out), l => Assert.True(l.Length <= columns, $"{l.Length} > {columns}: {l}"));
        Assert.Contains("[1,3,64,64]", v.Out);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-number")]
    public void Without_a_usable_COLUMNS_and_no_terminal_tables_are_laid_out_for_120_columns(string? columns)
    {
        var r = RunAt(columns, ["info", Dcgan]);
        var widest = TableLines(r.Out).Max(l => l.Length);
        Assert.True(widest <= Terminal.DefaultWidth && widest > 100, $"widest table line {widest}");
        // A wider COLUMNS is honoured (the table then has room for every column).
        Assert.True(TableLines(RunAt("200", ["info", Dcgan]).Out).Max(l => l.Length) > Terminal.DefaultWidth);
    }

    [Fact]
    public void The_real_COLUMNS_variable_sets_the_width_of_the_installed_command()
    {
        static string Run(string? columns)
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "onnx-deconv.dll"));
            foreach (var a in new[] { "info", Dcgan }) psi.ArgumentList.Add(a);
            if (columns is null) psi.Environment.Remove("COLUMNS"); else psi.Environment["COLUMNS"] = columns;
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
            return output;
        }
        Assert.True(TableLines(Run("80")).Max(l => l.Length) <= 80);
        Assert.True(TableLines(Run(null)).Max(l => l.Length) > 80); // piped, no COLUMNS: 120
    }

    [Fact]
    public void Wrapping_breaks_at_spaces_then_after_slashes_and_plus_and_cuts_only_longer_pieces()
    {
        Assert.Equal(["polyphase Conv(12ch,", "k2x2)"], TextTable.Wrap("polyphase Conv(12ch, k2x2)", 20));
        Assert.Equal(["ConvTranspose+", "BatchNormalization"], TextTable.Wrap("ConvTranspose+BatchNormalization", 20));
        Assert.Equal(["abcdef", "gh"], TextTable.Wrap("abcdefgh", 6));
        Assert.Equal(["short"], TextTable.Wrap("short", 20));
    }

    [Fact]
    public void Shortening_keeps_both_ends_and_leaves_short_names_alone()
    {
        Assert.Equal("/main/...nspose", TextTable.ShortenMiddle("/main/main.12/ConvTranspose", 15, 6));
        Assert.Equal("up1", TextTable.ShortenMiddle("up1", 15, 6));
    }

    [Fact]
    public void A_table_too_wide_for_any_column_layout_becomes_one_key_value_table_per_row()
    {
        var t = new TextTable("node", "a long header", "another long header", "third") .Names("node");
        t.AddRow("/very/long/node/name/one", "alpha beta", "gamma delta epsilon", "1");
        t.AddRow("/very/long/node/name/two", "zeta", "eta theta", "2");
        var lines = Render(t, 40);
        Assert.All(lines, l => Assert.True(l.Length <= 40, l));
        Assert.Contains(lines, l => l.Contains("another long header") && l.Contains("gamma delta"));
        Assert.Equal(2, lines.Count(l => l.StartsWith('╭')));

        var wide = Render(t, 120);
        Assert.Single(wide, l => l.StartsWith('╭')); // one ordinary table when it fits
    }

    private static List<string> Render(TextTable t, int width)
    {
        var w = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.No,
            Out = new Spectre.Console.AnsiConsoleOutput(w),
        });
        console.Profile.Width = width;
        console.Write(t);
        return [.. w.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0)];
    }
}
