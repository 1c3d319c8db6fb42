using System.CommandLine;

namespace OnnxDeconv.Cli.Commands;

/// <summary>Every subcommand, one class each; add a line here for a new command.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return ExplainCommand.Create();
        yield return InfoCommand.Create();
        yield return VerifyCommand.Create();
        yield return OptimizeCommand.Create();
        yield return TestCommand.Create();
        yield return BenchCommand.Create();
    }
}
