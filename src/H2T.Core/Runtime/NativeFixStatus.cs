namespace H2T.Runtime;

/// <summary>State of TorchSharp's native glue library on this machine, as <c>h2t info</c> reports it.</summary>
public sealed record NativeFixStatus(string? LibraryPath, string State, string Detail)
{
    public override string ToString() => LibraryPath is null ? $"{State}: {Detail}" :
        $"{State} ({LibraryPath}): {Detail}";
}
