using OnnxDeconv.Kernels;

namespace OnnxDeconv.Tests.Kernels;

/// <summary>
/// <see cref="Epilogue.ApplyInPlace"/> (the vectorised run form the kernels use) against <see cref="Epilogue.Apply"/>
/// element by element: exactly equal for Relu/LeakyRelu/Clip (NaN kept where Apply keeps it), and for Sigmoid/Tanh
/// within |a-b| &lt;= 1e-5 + 1e-4*|b| (float32; TensorPrimitives' vector exp differs from MathF by a few ulp).
/// Lengths 0..70 hit every vector tail of 4, 8 and 16 lanes.
/// </summary>
public class EpilogueTests
{
    public static TheoryData<Epilogue> Epilogues() =>
    [
        new Epilogue(Activation.None),
        new Epilogue(Activation.Relu),
        new Epilogue(Activation.LeakyRelu, Alpha: 0.2f),
        new Epilogue(Activation.Clip, Min: -0.5f, Max: 0.75f),
        new Epilogue(Activation.Clip, Min: 0f, Max: 6f),
        new Epilogue(Activation.Sigmoid),
        new Epilogue(Activation.Tanh),
    ];

    [Theory]
    [MemberData(nameof(Epilogues))]
    public void ApplyInPlace_EveryLength_MatchesApply(Epilogue ep)
    {
        var rng = new Random(5);
        for (int n = 0; n <= 70; n++)
        {
            var values = new float[n + 2];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 24 - 12);
            if (n > 3) { values[1] = float.NaN; values[2] = float.PositiveInfinity; values[3] = float.NegativeInfinity; }
            var expected = values.Select(ep.Apply).ToArray();
            var actual = (float[])values.Clone();
            ep.ApplyInPlace(actual.AsSpan(1, n)); // offset start: unaligned runs, as the kernels pass them
            Assert.Equal(values[0], actual[0]); // outside the run: untouched
            Assert.Equal(values[n + 1], actual[n + 1]);
            for (int i = 1; i <= n; i++)
            {
                float a = actual[i], b = expected[i];
                if (float.IsNaN(b)) { Assert.True(float.IsNaN(a), $"{ep.Kind} n={n} [{i}]: NaN expected, got {a}"); continue; }
                if (ep.Kind is Activation.Sigmoid or Activation.Tanh)
                    Assert.True(Math.Abs(a - b) <= 1e-5f + 1e-4f * Math.Abs(b), $"{ep.Kind} n={n} [{i}] x={values[i]}: {a} vs {b}");
                else
                    Assert.Equal(b, a);
            }
        }
    }

    [Fact]
    public void ApplyInPlace_Clip_NaNPropagatesLikeMathMinMax()
    {
        var ep = new Epilogue(Activation.Clip, Min: 0f, Max: 1f);
        var v = Enumerable.Repeat(float.NaN, 40).ToArray();
        ep.ApplyInPlace(v);
        Assert.All(v, x => Assert.True(float.IsNaN(x)));
        Assert.True(float.IsNaN(ep.Apply(float.NaN))); // the scalar definition it mirrors
    }
}
