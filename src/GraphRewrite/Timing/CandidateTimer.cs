using OnnxDeconv.GraphRewrite.Runtime;

namespace OnnxDeconv.GraphRewrite.Timing;

/// <summary>A model to time: serialized, with the inputs it runs on.</summary>
/// <param name="Label">What it is (e.g. "unchanged", "plugin", "original").</param>
/// <param name="UsesPlugin">The session must register the OnnxDeconv custom op.</param>
public sealed record TimedModel(string Label, byte[] Model, IReadOnlyList<TensorValue> Inputs, bool UsesPlugin);

/// <summary>
/// Times candidate models against each other. An interface so that <c>--target auto</c>'s decisions can be scripted in
/// tests (which candidate "wins" must not depend on the machine's load).
/// </summary>
public interface ICandidateTimer
{
    /// <summary>Median milliseconds per run of each model, in order, measured side by side.</summary>
    /// <param name="subject">What is being decided (a node's description, or "whole model").</param>
    IReadOnlyList<double> Time(string subject, IReadOnlyList<TimedModel> models);
}

/// <summary>Times the models in ONNX Runtime, round-robin after warm-up (<see cref="RoundRobinTimer"/>), all with the same thread count.</summary>
public sealed class OrtCandidateTimer(int intraOpThreads, TimingBudget budget) : ICandidateTimer
{
    public int IntraOpThreads { get; } = intraOpThreads;

    public IReadOnlyList<double> Time(string subject, IReadOnlyList<TimedModel> models)
    {
        var sessions = new List<OrtTimedSession>();
        try
        {
            foreach (var m in models)
                sessions.Add(OrtTimedSession.FromBytes(m.Model, m.Inputs, new TimedSessionOptions
                {
                    IntraOpThreads = IntraOpThreads,
                    Configure = m.UsesPlugin ? so => so.RegisterOnnxDeconv() : null,
                }));
            // The plugin's managed kernel must be at its optimized tier before it is timed against native ORT ops.
            if (models.Any(m => m.UsesPlugin)) JitSettle.Run(sessions);
            return RoundRobinTimer.Measure(sessions, budget).Select(s => s.MedianMs).ToList();
        }
        finally
        {
            foreach (var s in sessions) s.Dispose();
        }
    }
}
