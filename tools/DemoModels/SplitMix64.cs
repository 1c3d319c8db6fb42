namespace OnnxDeconv.DemoModels;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny PRNG whose output is fixed by its published algorithm, unlike
/// System.Random, so demo weights and test inputs stay byte-identical across .NET versions.
/// </summary>
public sealed class SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 24 random bits: exactly representable as float, no rounding surprises.</summary>
    public float NextUnit() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    /// <summary>Uniform in [-bound, bound).</summary>
    public float NextUniform(float bound) => (2f * NextUnit() - 1f) * bound;

    public float[] Uniform(long count, float bound)
    {
        var a = new float[checked((int)count)];
        for (int i = 0; i < a.Length; i++) a[i] = NextUniform(bound);
        return a;
    }

    /// <summary>Uniform in [lo, hi).</summary>
    public float[] Range(long count, float lo, float hi)
    {
        var a = new float[checked((int)count)];
        for (int i = 0; i < a.Length; i++) a[i] = lo + (hi - lo) * NextUnit();
        return a;
    }
}
