namespace OnnxDeconv;

/// <summary>
/// The base of every error a user can fix by changing what they gave us (a model file, an attribute, a --shape, an
/// option value). The message names the file, node, attribute or option. Front ends map this one type to their
/// "invalid input" outcome (the CLI's exit code 3) in one place; anything else is unexpected (exit 1).
/// </summary>
public abstract class InvalidInputException(string message, Exception? inner = null) : Exception(message, inner);
