// The F# quickstart, on NeuralOde.Core alone. In the test command it is also built as a new console app against the
// packed NeuralOde.Core package (tests/Consumers/Consumers.fsx). Run plain, its first TorchSharp call comes before any NeuralOde call, so the native backend must load by the
// package's build-time fix; run with --ensure-loaded (built with NeuralOdeSkipGlibcxxFix=true) it loads the backend
// with NativeBackend.ensureLoaded first, the run-time fix. x' = a x with a the weight of a 1×1 linear layer:
// x(1) = x0 e^a, dx(1)/dx0 = e^a, dx(1)/da = x0 e^a, the gradients by the adjoint.
open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Native

[<EntryPoint>]
let main argv =
    if Array.contains "--ensure-loaded" argv then
        printfn "native backend: %A" (NativeBackend.ensureLoaded ())
    use x0 = torch.tensor([| 2.0 |], dtype = torch.float64, requires_grad = true)
    use layer = torch.nn.Linear(1L, 1L, hasBias = false, dtype = torch.float64)
    using (torch.no_grad ()) (fun _ -> layer.weight.fill_(-0.5) |> ignore)
    let problem =
        OdeProblem.onSpan (fun _ x -> layer.forward x) x0 0.0 1.0
        |> OdeProblem.withParameters (layer.parameters () |> Seq.map (fun p -> p :> torch.Tensor))
    use solution = Ode.solveWith Sensitivity.adjoint problem Solvers.dopri5 (StepControl.adaptive 1e-10 1e-12)
    solution.Final.sum().backward()
    let e = exp -0.5
    let final, dx0, da = solution.Final.ToDouble(), x0.grad.ToDouble(), layer.weight.grad.ToDouble()
    let worst = List.max [ abs (final - 2.0 * e); abs (dx0 - e); abs (da - 2.0 * e) ]
    printfn "F# app: x(1) = %.10f, dx(1)/dx0 = %.10f, dx(1)/da = %.10f; largest error %.1e" final dx0 da worst
    if worst > 1e-7 then
        printfn "FAILED: the solution or its adjoint gradients are off"
        1
    else
        printfn "quickstart ok: the solution and its adjoint gradients match the closed forms"
        0
