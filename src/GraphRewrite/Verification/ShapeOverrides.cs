namespace OnnxDeconv.GraphRewrite.Verification;

/// <summary>Concrete shapes for graph inputs, given as <c>name=1,3,64,64</c> (the CLI's <c>--shape</c>): see <see cref="Shapes.ShapeSpecs"/>, the one parser.</summary>
public static class ShapeOverrides
{
    public static IReadOnlyDictionary<string, long[]> Parse(IEnumerable<string>? specs) => Shapes.ShapeSpecs.Parse(specs);
}
