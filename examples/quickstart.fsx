// The F# script quickstart: `dotnet fsi quickstart.fsx`, with NeuralOde.Core from your NuGet feed. In this
// repository, `dotnet fsi build.fsx pack` first and add the line  #i "nuget: <repository>/out/packages"  above the
// #r lines (the NuGet cache keeps the first 0.1.0 it restored: after packing again, delete
// ~/.nuget/packages/neuralode.core/0.1.0, or the script runs the old one). The test command runs this file against freshly packed packages (tests/Consumers/Consumers.fsx).
//
// No native library is loaded by hand: F# Interactive runs the package's content/NeuralOde.Core.fsx, which loads
// TorchSharp's backend before the first TorchSharp call below (with the fix Debian 12 and Ubuntu 22.04 need).
//
// x' = a x with a the weight of a 1×1 linear layer: x(1) = x0 e^a, dx(1)/dx0 = e^a, dx(1)/da = x0 e^a, the
// gradients by the adjoint, checked against those closed forms.
#r "nuget: NeuralOde.Core, 0.1.0"
#r "nuget: libtorch-cpu-linux-x64, 2.10.0"

open TorchSharp
open NeuralOde.Core

let x0 = torch.tensor([| 2.0 |], dtype = torch.float64, requires_grad = true)
let layer = torch.nn.Linear(1L, 1L, hasBias = false, dtype = torch.float64)
using (torch.no_grad ()) (fun _ -> layer.weight.fill_(-0.5) |> ignore)
let problem =
    OdeProblem.onSpan (fun _ x -> layer.forward x) x0 0.0 1.0
    |> OdeProblem.withParameters (layer.parameters () |> Seq.map (fun p -> p :> torch.Tensor))
let solution = Ode.solveWith Sensitivity.adjoint problem Solvers.dopri5 (StepControl.adaptive 1e-10 1e-12)
solution.Final.sum().backward()
let e = exp -0.5
let final, dx0, da = solution.Final.ToDouble(), x0.grad.ToDouble(), layer.weight.grad.ToDouble()
let worst = List.max [ abs (final - 2.0 * e); abs (dx0 - e); abs (da - 2.0 * e) ]
printfn "native backend: %A" (NeuralOde.Core.Native.NativeBackend.ensureLoaded ())
printfn "F# script: x(1) = %.10f, dx(1)/dx0 = %.10f, dx(1)/da = %.10f; largest error %.1e" final dx0 da worst
if worst > 1e-7 then
    printfn "FAILED: the solution or its adjoint gradients are off"
    exit 1
printfn "quickstart ok: the solution and its adjoint gradients match the closed forms"
