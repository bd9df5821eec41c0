using System.Runtime.CompilerServices;
using System;
using System.IO;
using Loader = NeuralOde.Core.Native.NativeBackend;
using Convolutions = NeuralOde.Core.Native.OneDnnCheck;

namespace NeuralOde;

/// <summary>What <see cref="NativeBackend.EnsureLoaded"/> found and did.</summary>
public enum NativeBackendState
{
    /// <summary>Not Linux: TorchSharp's own loading applies unchanged.</summary>
    NotApplicable,
    /// <summary>The libstdc++ this process uses has GLIBCXX_3.4.32 (or the shim needs no fix): nothing was done.</summary>
    NotNeeded,
    /// <summary>TorchSharp's shim was already loaded in this process; nothing was done.</summary>
    AlreadyLoaded,
    /// <summary>Loaded from where it lies: the system's libstdc++ suffices or the build already fixed the file.</summary>
    Loaded,
    /// <summary>A copy of the shim fixed for this system's older libstdc++ was made in a private cache and loaded.</summary>
    LoadedFixedCopy,
    /// <summary>TorchSharp's shim was not found; TorchSharp's own loading applies and reports what it lacks.</summary>
    ShimNotFound,
}

/// <summary>The outcome of <see cref="NativeBackend.EnsureLoaded"/>.</summary>
/// <param name="State">What was done.</param>
/// <param name="Shim">The shim's path (null when not applicable or not found).</param>
/// <param name="FixedCopy">The fixed copy that was loaded, for <see cref="NativeBackendState.LoadedFixedCopy"/>; otherwise null.</param>
public sealed record NativeBackendReport(NativeBackendState State, string? Shim, string? FixedCopy)
{
    /// <summary>One line: the state and the paths.</summary>
    public override string ToString() => State switch
    {
        NativeBackendState.LoadedFixedCopy => $"LoadedFixedCopy: {Shim} fixed for this system's libstdc++ as {FixedCopy}",
        NativeBackendState.NotApplicable or NativeBackendState.NotNeeded or NativeBackendState.ShimNotFound => State.ToString(),
        _ => $"{State}: {Shim}",
    };
}

/// <summary>What <see cref="NativeBackend.EnsureCorrectConvolutions"/> found and did.</summary>
public enum ConvolutionBackendState
{
    /// <summary>Every float32 convolution of the check agreed with float64; oneDNN stays on.</summary>
    Correct,
    /// <summary>oneDNN's were wrong on this CPU; oneDNN was switched off and the convolutions then agreed.</summary>
    SwitchedOff,
    /// <summary>NEURALODE_ONEDNN=off: oneDNN switched off without a check.</summary>
    SwitchedOffByRequest,
    /// <summary>oneDNN's were wrong and kept on because NEURALODE_ONEDNN=keep.</summary>
    WrongButKept,
    /// <summary>Wrong even without oneDNN: nothing here can fix it.</summary>
    StillWrong,
    /// <summary>The libtorch in this process does not export the switch; nothing was changed.</summary>
    SwitchUnavailable,
}

/// <summary>The outcome of <see cref="NativeBackend.EnsureCorrectConvolutions"/>.</summary>
/// <param name="State">What was found and done.</param>
/// <param name="WorstCase">The convolution with the largest error (shape and errors), where one was wrong; else null.</param>
/// <param name="Description">One line saying what was found and done.</param>
public sealed record ConvolutionCheckReport(ConvolutionBackendState State, string? WorstCase, string Description)
{
    /// <summary>The description.</summary>
    public override string ToString() => Description;
}

/// <summary>
/// Loads TorchSharp's native backend before TorchSharp does, with the fix that makes it load on Linux systems whose
/// libstdc++ predates GCC 13 (Debian 12, Ubuntu 22.04). Applications get the same fix at build time, and this
/// assembly calls <see cref="EnsureLoaded"/> when it is first used; call it yourself only when your program's first
/// TorchSharp call comes before any NeuralOde call in a build that skipped the fix. The NuGet cache is never written.
/// </summary>
public static class NativeBackend
{
    /// <summary>
    /// Loads the backend once and says how; later calls return the first call's report. Does nothing when
    /// TorchSharp already loaded it.
    /// </summary>
    /// <exception cref="DllNotFoundException">libtorch or a library it needs could not be found or loaded.</exception>
    /// <exception cref="InvalidOperationException">TorchSharp already failed to load its backend in this process.</exception>
    /// <exception cref="IOException">The fixed copy could not be written (set NEURALODE_NATIVE_CACHE).</exception>
    /// <exception cref="InvalidDataException">The shim is not the file the fix expects.</exception>
    public static NativeBackendReport EnsureLoaded() => Loader.ensureLoaded() switch
    {
        Loader.NativeBackendStatus.AlreadyLoaded s => new(NativeBackendState.AlreadyLoaded, s.shim, null),
        Loader.NativeBackendStatus.Loaded s => new(NativeBackendState.Loaded, s.shim, null),
        Loader.NativeBackendStatus.LoadedFixedCopy s => new(NativeBackendState.LoadedFixedCopy, s.original, s.copy),
        Loader.NativeBackendStatus.ShimNotFound => new(NativeBackendState.ShimNotFound, null, null),
        { IsNotNeeded: true } => new(NativeBackendState.NotNeeded, null, null),
        _ => new(NativeBackendState.NotApplicable, null, null),
    };

    /// <summary>
    /// Checks once per process that libtorch's float32 convolutions agree with float64 on this CPU and, where they do
    /// not, switches oneDNN (libtorch's "mkldnn" backend) off for the process — libtorch 2.10's oneDNN computes them
    /// wrong on some AMD EPYC virtual machines (see docs/troubleshooting.md). Later calls return the first call's
    /// report. <see cref="NeuralOdeBlock"/>, the trainer and the other models call it; call it yourself before
    /// convolutions of your own that run outside them. NEURALODE_ONEDNN=keep keeps oneDNN on (the check still reports),
    /// NEURALODE_ONEDNN=off switches it off without a check.
    /// </summary>
    public static ConvolutionCheckReport EnsureCorrectConvolutions()
    {
        var status = Convolutions.ensureCorrect();
        var text = status.ToString();
        return status switch
        {
            Convolutions.OneDnnStatus.SwitchedOff s => new(ConvolutionBackendState.SwitchedOff, s.wrong.ToString(), text),
            Convolutions.OneDnnStatus.WrongButKept s => new(ConvolutionBackendState.WrongButKept, s.wrong.ToString(), text),
            Convolutions.OneDnnStatus.StillWrong s => new(ConvolutionBackendState.StillWrong, s.wrong.ToString(), text),
            Convolutions.OneDnnStatus.SwitchUnavailable => new(ConvolutionBackendState.SwitchUnavailable, null, text),
            { IsSwitchedOffByRequest: true } => new(ConvolutionBackendState.SwitchedOffByRequest, null, text),
            _ => new(ConvolutionBackendState.Correct, null, text),
        };
    }

    /// <summary>Whether libtorch may use oneDNN in this process (PyTorch's torch.backends.mkldnn.enabled); null where
    /// the flag cannot be read. Setting it switches oneDNN for the whole process.</summary>
    /// <exception cref="InvalidOperationException">Set where the libtorch in this process does not export the switch.</exception>
    public static bool? OneDnnEnabled
    {
        get => Convolutions.isEnabled() is { } v ? v.Value : null;
        set
        {
            if (value is null) throw new ArgumentNullException(nameof(value), "OneDnnEnabled is set to true or false.");
            Convolutions.setEnabled(value.Value);
        }
    }

    /// <summary>Runs when this assembly is first used. A failure is left for TorchSharp to report on its first
    /// call (its message names what is missing), and for <see cref="EnsureLoaded"/> to raise when called.</summary>
#pragma warning disable CA2255 // a library's module initializer: here it must run before the user's first TorchSharp call
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void LoadWhenFirstUsed()
    {
        // Whatever happens here must not escape: an exception from a module initializer would make this whole
        // assembly unusable for the rest of the process.
        try { Loader.ensureLoaded(); }
        catch (Exception) { }
    }
}
