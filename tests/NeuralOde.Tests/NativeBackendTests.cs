namespace NeuralOde.Tests;

/// <summary>
/// <see cref="NativeBackend"/> from C#: by the time a test runs, this assembly's module initializer or TorchSharp has
/// loaded the backend, and the report says which and from where. The fixed-copy path is run by the consumer tests
/// (tests/Consumers).
/// </summary>
public class NativeBackendTests
{
    [Fact]
    public void EnsureLoadedReportsTheShimInUse()
    {
        using var x = TorchSharp.torch.ones(2);
        var report = NativeBackend.EnsureLoaded();
        if (!OperatingSystem.IsLinux()) { Assert.Equal(NativeBackendState.NotApplicable, report.State); return; }
        Assert.Contains(report.State, new[] { NativeBackendState.Loaded, NativeBackendState.AlreadyLoaded, NativeBackendState.NotNeeded });
        Assert.Null(report.FixedCopy);
        if (report.State == NativeBackendState.NotNeeded)
        {
            Assert.Null(report.Shim);
            Assert.Equal("NotNeeded", report.ToString());
        }
        else
        {
            Assert.Equal("libLibTorchSharp.so", Path.GetFileName(report.Shim));
            Assert.Equal($"{report.State}: {report.Shim}", report.ToString());
        }
        Assert.Equal(report, NativeBackend.EnsureLoaded());
    }
}
