namespace OnnxDeconv;
internal static class AssemblyMarker { }
