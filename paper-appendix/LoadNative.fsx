// Loads TorchSharp's native libraries for F# scripts. A compiled app finds them through its deps.json; F#
// Interactive does not, and TorchSharp's fallback would copy the unpatched shim from the NuGet cache (which does not
// load on Debian 12, see the README's troubleshooting). So scripts load the build output's (patched) copies first.
#r "../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"

let private native = System.IO.Path.Combine(__SOURCE_DIRECTORY__, "../tests/NeuralOde.Core.Tests/bin/Release/net10.0/runtimes/linux-x64/native")
for library in [ "libtorch_cpu.so"; "libtorch.so"; "libLibTorchSharp.so" ] do
    let path = System.IO.Path.Combine(native, library)
    if not (System.IO.File.Exists path) then
        failwithf "%s is missing: build first (dotnet fsi build.fsx build)" path
    System.Runtime.InteropServices.NativeLibrary.Load(path) |> ignore
