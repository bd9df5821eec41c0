// What every tutorial loads first (hidden on the rendered pages): the library from this repository's build, ScottPlot
// for the figures, the quick-mode switch and where figures go. A script of your own writes instead:
//   #r "nuget: NeuralOde.Core, 0.1.0"
//   #r "nuget: libtorch-cpu-linux-x64, 2.10.0"
//   #r "nuget: ScottPlot, 5.1.59"
// Run a tutorial after a build (`dotnet fsi build.fsx build`): dotnet fsi docs/tutorials/01-first-neural-ode.fsx
// (`--quick`: the small sizes the test command runs).
module Setup

#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/TorchSharp.dll"
#r "../../tests/NeuralOde.Core.Tests/bin/Release/net10.0/NeuralOde.Core.dll"
#r "nuget: ScottPlot, 5.1.59"

NeuralOde.Core.Native.NativeBackend.ensureLoaded () |> ignore

/// True under `--quick` (or NEURALODE_TUTORIAL_QUICK=1): the test command's small sizes.
let quick =
    fsi.CommandLineArgs |> Array.contains "--quick" || System.Environment.GetEnvironmentVariable "NEURALODE_TUTORIAL_QUICK" = "1"

/// `full` normally, `small` in quick mode.
let size (full: int) (small: int) = if quick then small else full

/// Where figures go: out/tutorials/ under the repository (or NEURALODE_TUTORIAL_OUT).
let outDir =
    let dir =
        match System.Environment.GetEnvironmentVariable "NEURALODE_TUTORIAL_OUT" with
        | null | "" -> System.IO.Path.Combine(__SOURCE_DIRECTORY__, "..", "..", "out", "tutorials")
        | d -> d
    System.IO.Directory.CreateDirectory dir |> ignore
    System.IO.Path.GetFullPath dir

/// Saves a plot as a PNG in outDir and says where.
let save (plot: ScottPlot.Plot) (name: string) =
    let path = System.IO.Path.Combine(outDir, name)
    plot.SavePng(path, 640, 480) |> ignore
    printfn "figure: %s" path

/// A tensor's values as a float array (float64 copy).
let values (t: TorchSharp.torch.Tensor) : float[] =
    use d = t.detach().cpu().to_type(TorchSharp.torch.float64).contiguous()
    d.data<float>().ToArray()

/// Fails the script (exit code 1) with a message when a tutorial's claim does not hold.
let check (condition: bool) (message: string) =
    if condition then printfn "check: %s" message
    else
        eprintfn "CHECK FAILED: %s" message
        exit 1
