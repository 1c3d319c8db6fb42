using System.CommandLine;
using System.Globalization;

namespace OnnxDeconv.Cli;

/// <summary>
/// Finds what System.CommandLine reports badly: an unknown option (<c>--kernal 5</c> would be read as the MODEL
/// argument, and the error names '5'), a trailing unknown <c>--bogus</c> (read as a model path), an unknown command.
/// Each problem names the token the user typed and, when one is close, the option or command they probably meant.
/// </summary>
internal static class OptionCheck
{
    public static List<string> Problems(ParseResult parsed, IReadOnlyList<string> args)
    {
        var problems = new List<string>();
        var command = parsed.CommandResult.Command;
        var known = KnownOptions(parsed.CommandResult);
        string where = CommandPath(parsed.CommandResult);
        foreach (var token in OptionTokens(args))
        {
            string name = OptionName(token);
            if (known.Contains(name)) continue;
            string? guess = Closest(name, known.Where(k => k.StartsWith("--", StringComparison.Ordinal)));
            problems.Add($"{where}: unknown option '{name}'" +
                         (guess is not null ? $" (did you mean {guess}?)" : $"; see '{where} --help'"));
        }
        // "onnx-deconv optimise m.onnx": the root has no arguments, so its first unmatched word is a mistyped command.
        if (command is RootCommand && parsed.UnmatchedTokens.FirstOrDefault(t => !t.StartsWith('-')) is { } word)
        {
            var names = command.Subcommands.Select(c => c.Name).ToList();
            string? guess = Closest(word, names);
            problems.Add($"unknown command '{word}'" + (guess is not null ? $" (did you mean {guess}?)" : "") +
                         $"; commands: {string.Join(", ", names)}");
        }
        return problems;
    }

    /// <summary>The command's options and aliases plus the recursive ones of its parents (--help, --version).</summary>
    private static HashSet<string> KnownOptions(System.CommandLine.Parsing.CommandResult result)
    {
        var known = new HashSet<string>(StringComparer.Ordinal);
        for (System.CommandLine.Parsing.SymbolResult? r = result; r is not null; r = r.Parent)
        {
            if (r is not System.CommandLine.Parsing.CommandResult cr) continue;
            foreach (var o in cr.Command.Options.Where(o => ReferenceEquals(cr, result) || o.Recursive))
            {
                known.Add(o.Name);
                foreach (var a in o.Aliases) known.Add(a);
            }
        }
        return known;
    }

    private static string CommandPath(System.CommandLine.Parsing.CommandResult result)
    {
        var names = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = result; r is not null; r = r.Parent)
            if (r is System.CommandLine.Parsing.CommandResult cr) names.Add(cr.Command is RootCommand ? "onnx-deconv" : cr.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    /// <summary>Tokens that look like options: start with '-', are not negative numbers, and come before a "--".</summary>
    private static IEnumerable<string> OptionTokens(IReadOnlyList<string> args)
    {
        foreach (var a in args)
        {
            if (a == "--") yield break;
            if (a.Length < 2 || a[0] != '-') continue;
            if (double.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out _)) continue; // --padding -1
            if (a.Contains(',') && a.Split(',').All(p => long.TryParse(p, CultureInfo.InvariantCulture, out _))) continue; // -1,2
            yield return a;
        }
    }

    /// <summary>"--shape=x=1,2" and "--shape:..." name the option before the first '=' or ':'.</summary>
    private static string OptionName(string token)
    {
        int cut = token.IndexOfAny(['=', ':']);
        return cut > 0 ? token[..cut] : token;
    }

    /// <summary>The candidate within a small edit distance (a third of the word, at least 2), or null.</summary>
    internal static string? Closest(string word, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            int d = Distance(word, c);
            if (d < bestDistance) (best, bestDistance) = (c, d);
        }
        return best is not null && bestDistance <= Math.Max(2, word.TrimStart('-').Length / 3) ? best : null;
    }

    /// <summary>Levenshtein distance with adjacent transpositions counted as one edit (optimal string alignment).</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
