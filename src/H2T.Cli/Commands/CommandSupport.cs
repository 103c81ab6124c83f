using H2T.Runtime;
using H2T.Training;
using TorchSharp;

namespace H2T.Cli.Commands;

/// <summary>What every computing command does first, and how library errors become one-line usage errors.</summary>
internal static class CommandSupport
{
    public static T Guard<T>(Func<T> make, Action<T> validate)
    {
        try
        {
            var value = make();
            validate(value);
            return value;
        }
        catch (ConfigException e) { throw new UsageException(e.Message); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
    }

    public static torch.Device Start(GlobalSettings settings)
    {
        TorchRuntime.Initialize(settings.Threads);
        try { return TorchRuntime.ResolveDevice(settings.Device); }
        catch (DeviceUnavailableException e) { throw new UsageException(e.Message); }
    }

    /// <summary>Bad input found while loading data or checkpoints is the user's to fix: exit code 2.</summary>
    public static T Train<T>(Func<T> work)
    {
        try { return work(); }
        catch (ConfigException e) { throw new UsageException(e.Message); }
        catch (InvalidDataException e) { throw new UsageException(e.Message); }
        catch (H2T.Data.DataFormatException e) { throw new UsageException(e.Message); }
        catch (FileNotFoundException e) { throw new UsageException(e.Message); }
        catch (DirectoryNotFoundException e) { throw new UsageException(e.Message); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
    }
}
