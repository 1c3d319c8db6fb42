using OnnxDeconv.Geometry;
using OnnxDeconv.GraphRewrite.Graph;
using OnnxDeconv.GraphRewrite.Lowering;

namespace OnnxDeconv.GraphRewrite.Patterns;

/// <summary>
/// The "never throws" contract of pattern matchers in one place: a check returns null and a match, or a reason; any
/// exception from reading a malformed model (or a bug) becomes a reason, so one bad node never aborts a whole model.
/// </summary>
internal static class SafeMatch
{
    public delegate string? Check<T>(out T? match) where T : class;

    public static bool Try<T>(Check<T> check, out T? match, out string? reason) where T : class
    {
        match = null;
        try
        {
            reason = check(out match);
            if (reason is not null) match = null;
            return reason is null;
        }
        catch (Exception e) when (e is AttributeException or GeometryException or LoweringException or InvalidDataException or OverflowException)
        {
            match = null;
            reason = e.Message;
            return false;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug here must not abort the whole model: the pattern is left alone and the report says why.
            match = null;
            reason = $"internal error while matching: {e.GetType().Name}: {e.Message}";
            return false;
        }
    }
}
