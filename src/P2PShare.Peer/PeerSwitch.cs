namespace P2PShare.Peer;

/// <summary>
/// One command-line switch of the peer, declared once: its System.CommandLine option, its line in
/// <c>--help</c>, the setting it writes and that setting's environment variable all come from here.
/// </summary>
/// <param name="Name">The switch, e.g. <c>--silo-port</c>.</param>
/// <param name="Key">The configuration key it sets, e.g. <c>Peer:SiloPort</c>.</param>
/// <param name="ValueType">
/// The setting's type; a value the configuration binder could not convert to it is refused while
/// parsing, with the binder's own message, instead of failing the silo's start.
/// </param>
/// <param name="ValueName">The value's placeholder in help, e.g. <c>N</c>; null for a flag, which stands alone and means <c>true</c>.</param>
/// <param name="Help">What the setting does.</param>
/// <param name="Default">The default as help shows it, taken from the options' constants.</param>
internal sealed record PeerSwitch(string Name, string Key, Type ValueType, string? ValueName, string Help, string Default)
{
    /// <summary>Prefix of the environment variables the peer reads; <c>__</c> separates sections.</summary>
    public const string EnvironmentPrefix = "P2PSHARE__";

    public bool IsFlag => ValueName is null;

    /// <summary>The environment variable of the same setting, e.g. <c>P2PSHARE__PEER__SILOPORT</c>.</summary>
    public string EnvironmentVariable =>
        EnvironmentPrefix + Key.Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant();

    /// <summary>The switch's text in <c>--help</c>: what it does, its setting, variable and default.</summary>
    public string Description => $"{Help} [{Key}, {EnvironmentVariable}; default: {Default}]";
}
