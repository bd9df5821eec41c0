// A new user's F# script against the packed NeuralOde.Core package (tests/Consumers/Consumers.fsx fills in the
// package folder and version). No native library is loaded by hand: F# Interactive runs the package's
// content/NeuralOde.Core.fsx, which loads TorchSharp's backend before the first TorchSharp call below.
#i "nuget: {{PACKAGES}}"
#r "nuget: NeuralOde.Core, {{VERSION}}"
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
printfn "consumer ok"
