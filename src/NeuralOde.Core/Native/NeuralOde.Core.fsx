// F# Interactive loads this file by itself when a script references the NeuralOde.Core package
// (#r "nuget: NeuralOde.Core"): it loads TorchSharp's native backend before the script's first TorchSharp call,
// with the GLIBCXX_3.4.32 fix on systems whose libstdc++ predates GCC 13. See NativeBackend in the library.
NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore
