namespace OnnxDeconv.Cli;

/// <summary>Process exit codes of every command (documented in the README).</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Unexpected = 1;
    public const int VerificationFailed = 2;
    public const int InvalidInput = 3;
}
