using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Runtime;
using OnnxDeconv.GraphRewrite.Timing;
using OnnxDeconv.GraphRewrite.Verification;
using OnnxDeconv.TestSupport;
using Xunit;

namespace OnnxDeconv.GraphRewrite.Tests.Timing;

public class TimingTests
{
    private sealed class Counter : ITimedRun
    {
        public int Runs;
        public void Run() => Runs++;
        public void Dispose() { }
    }

    [Fact]
    public void RoundRobin_RunsEveryCandidateEquallyAfterWarmup()
    {
        var a = new Counter();
        var b = new Counter();
        var stats = RoundRobinTimer.Measure([a, b], new TimingBudget(TimeSpan.Zero, MinRounds: 7, MaxRounds: 7, Warmup: 2));
        Assert.Equal(9, a.Runs);
        Assert.Equal(9, b.Runs);
        Assert.All(stats, s => Assert.Equal(7, s.Runs));
        Assert.All(stats, s => Assert.True(s.MinMs <= s.MedianMs && s.MedianMs <= s.MaxMs));
    }

    private sealed class Sequence(List<string> log, string name, int slowEvery) : ITimedRun
    {
        private int _n;
        public void Run()
        {
            log.Add(name);
            if (slowEvery > 0 && _n++ % slowEvery == 0) Thread.Sleep(30); // the first run of each block is the slow one
        }
        public void Dispose() { }
    }

    [Fact]
    public void RoundRobin_InBlocks_RunsEachCandidateInARowAndDropsTheFirstOfEachBlock()
    {
        var log = new List<string>();
        var a = new Sequence(log, "a", slowEvery: 4);
        var b = new Sequence(log, "b", slowEvery: 0);
        var stats = RoundRobinTimer.Measure([a, b], new TimingBudget(TimeSpan.Zero, MinRounds: 3, MaxRounds: 3, Warmup: 0, Block: 4));
        Assert.Equal(string.Concat(Enumerable.Repeat("aaaabbbb", 3)), string.Concat(log));
        Assert.All(stats, s => Assert.Equal(9, s.Runs)); // 3 rounds x (4 - 1)
        Assert.True(stats[0].MaxMs < 25, $"the slow first run of a block was kept: max {stats[0].MaxMs} ms");
        // Without blocks every run counts, the slow ones included.
        log.Clear();
        var c = new Sequence(log, "c", slowEvery: 2);
        var single = RoundRobinTimer.Measure([c], new TimingBudget(TimeSpan.Zero, MinRounds: 4, MaxRounds: 4, Warmup: 0));
        Assert.Equal(4, single[0].Runs);
        Assert.True(single[0].MaxMs >= 25);
    }

    [Fact]
    public void JitSettle_KeepsRunningWhileMethodsAreStillBeingCompiled()
    {
        // The "JIT" compiles a method on each of the first 40 rounds, then nothing: warm-up must outlast it.
        var a = new Counter();
        int rounds = JitSettle.Run([a], minRounds: 5, quiet: TimeSpan.Zero, max: TimeSpan.FromMinutes(1),
            compiledMethods: () => Math.Min(a.Runs, 40));
        Assert.Equal(41, rounds);
        Assert.Equal(41, a.Runs);
    }

    [Fact]
    public void JitSettle_RunsAtLeastMinRoundsWhenNothingCompiles()
    {
        var a = new Counter();
        var b = new Counter();
        int rounds = JitSettle.Run([a, b], minRounds: 12, quiet: TimeSpan.Zero, max: TimeSpan.FromMinutes(1), compiledMethods: () => 7);
        Assert.Equal(12, rounds);
        Assert.Equal(12, b.Runs);
    }

    [Fact]
    public void JitSettle_StopsAtTheLimitWhenCompilationNeverSettles()
    {
        var a = new Counter();
        int rounds = JitSettle.Run([a], minRounds: 1, quiet: TimeSpan.Zero, max: TimeSpan.FromMilliseconds(20), compiledMethods: () => a.Runs);
        Assert.Equal(a.Runs, rounds);
        Assert.True(rounds >= 1);
    }

    [Fact]
    public void RoundRobin_RejectsMaxRoundsBelowMinRounds() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => RoundRobinTimer.Measure([new Counter()], new TimingBudget(TimeSpan.Zero, MinRounds: 5, MaxRounds: 2)));

    [Fact]
    public void Median_OddAndEvenCounts()
    {
        Assert.Equal(2.0, RoundRobinTimer.Median([3.0, 1.0, 2.0]));
        Assert.Equal(2.5, RoundRobinTimer.Median([4.0, 1.0, 2.0, 3.0]));
        Assert.Throws<ArgumentException>(() => RoundRobinTimer.Median([]));
    }

    [Fact]
    public void TimedSession_OutputsEqualOrtRunner()
    {
        // Same model, same inputs: the timed session (bound I/O, ORT_ENABLE_ALL) must compute what verification computes.
        var path = Path.Combine(RepoPaths.DemoModels, "sr_block.onnx");
        var model = ModelIO.Load(path);
        using var reference = new OrtRunner(model);
        var inputs = InputGenerator.Generate(reference.Session, new Dictionary<string, long[]>(), seed: 3);
        var expected = reference.Run(inputs);
        using var timed = OrtTimedSession.FromBytes(ModelIO.Serialize(model), inputs);
        var actual = timed.RunAndRead();
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Dims, actual[i].Dims);
            var e = expected[i].AsFloats();
            var a = actual[i].AsFloats();
            // float32 tolerance |a-b| <= 1e-5 + 1e-4|b| (ORT_ENABLE_ALL may fuse differently from ORT_DISABLE_ALL).
            for (int j = 0; j < e.Length; j++) Assert.True(Math.Abs(a[j] - e[j]) <= 1e-5 + 1e-4 * Math.Abs(e[j]), $"element {j}: {a[j]} vs {e[j]}");
        }
        var stats = RoundRobinTimer.Measure([timed], new TimingBudget(TimeSpan.Zero, MinRounds: 3, MaxRounds: 3, Warmup: 1));
        Assert.Equal(3, stats[0].Runs);
        Assert.True(stats[0].MedianMs > 0);
    }
}
