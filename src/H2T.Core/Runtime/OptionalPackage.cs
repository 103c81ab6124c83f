using System.Reflection;

namespace H2T.Runtime;

/// <summary>
/// A package of this project that the core uses when the application references it, and does without when it does
/// not: H2T.Onnx (ONNX weights in, ONNX Runtime inference). The core never references it at compile time, so
/// dependencies point one way; the package is found by name in the application's own dependencies.
/// </summary>
public static class OptionalPackage
{
    /// <summary>The ONNX package's assembly name, as its project and package are called.</summary>
    public const string Onnx = "H2T.Onnx";

    /// <summary>A new <typeparamref name="T"/> made by <paramref name="typeName"/>'s parameterless constructor in
    /// <paramref name="assembly"/>, or null when the application does not reference that assembly.</summary>
    /// <remarks>An assembly that is there but does not load or does not fit (another version's, most likely) is an
    /// error naming both, not a silent absence.</remarks>
    public static T? Find<T>(string assembly, string typeName) where T : class
    {
        Assembly loaded;
        try { loaded = Assembly.Load(new AssemblyName(assembly)); }
        catch (FileNotFoundException) { return null; }
        catch (Exception e) when (e is FileLoadException or BadImageFormatException)
        {
            throw new InvalidOperationException($"{assembly} is referenced but does not load ({e.Message}); " +
                $"it must be the version of {typeof(OptionalPackage).Assembly.GetName().Name} " +
                $"{typeof(OptionalPackage).Assembly.GetName().Version}", e);
        }
        try { return (T)Activator.CreateInstance(loaded.GetType(typeName, throwOnError: true)!)!; }
        catch (Exception e) when (e is TypeLoadException or MissingMethodException or InvalidCastException)
        {
            throw new InvalidOperationException($"{assembly} {loaded.GetName().Version} has no usable {typeName} " +
                $"({e.Message}); it must be the version of {typeof(OptionalPackage).Assembly.GetName().Name} " +
                $"{typeof(OptionalPackage).Assembly.GetName().Version}", e);
        }
    }

    /// <summary>
    /// H2T.Onnx's implementation of the core's seam <typeparamref name="T"/> (<c>IOnnxRuntimeEngine</c>,
    /// <c>IOnnxWeights</c>): the class of the interface's name without its I, in the H2T.Onnx namespace. Found once
    /// per seam; null when the application does not reference the package. A failure to load it is thrown again on
    /// the next use, not kept.
    /// </summary>
    public static T? FromOnnx<T>() where T : class => OnnxSeam<T>.Implementation.Value;

    static class OnnxSeam<T> where T : class
    {
        public static readonly Lazy<T?> Implementation = new(
            () => Find<T>(Onnx, $"{Onnx}.{typeof(T).Name[1..]}"), LazyThreadSafetyMode.PublicationOnly);
    }

    /// <summary>What to do when <paramref name="feature"/> needs <paramref name="assembly"/> and it is
    /// absent.</summary>
    public static string Missing(string assembly, string feature) =>
        $"{feature} needs the {assembly} package, which this application does not reference: " +
        $"add <PackageReference Include=\"{assembly}\" /> (the h2t tool has it)";
}
