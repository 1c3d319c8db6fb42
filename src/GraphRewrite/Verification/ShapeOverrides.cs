using System.Globalization;

namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>Concrete shapes for graph inputs, given as <c>name=1,3,64,64</c> (the CLI's <c>--shape</c>).</summary>
public static class ShapeOverrides
{
    public static IReadOnlyDictionary<string, long[]> Parse(IEnumerable<string>? specs)
    {
        var result = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var spec in specs ?? [])
        {
            int eq = spec.LastIndexOf('=');
            if (eq <= 0 || eq == spec.Length - 1)
                throw new VerificationInputException($"--shape '{spec}': expected NAME=D1,D2,... (e.g. input=1,3,64,64)");
            var name = spec[..eq];
            var dims = new List<long>();
            foreach (var part in spec[(eq + 1)..].Split(',', 'x'))
            {
                if (!long.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var d) || d <= 0)
                    throw new VerificationInputException($"--shape '{spec}': '{part}' is not a positive integer dimension");
                dims.Add(d);
            }
            if (!result.TryAdd(name, [.. dims]))
                throw new VerificationInputException($"--shape: input '{name}' is given twice");
        }
        return result;
    }
}
