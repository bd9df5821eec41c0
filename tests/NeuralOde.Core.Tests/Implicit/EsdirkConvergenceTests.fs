/// Empirical convergence orders of the implicit solvers with fixed steps on a linear stiff system with a known
/// solution (eigenvalues −1 and −1000, float64): the error at t = 2 against exp(A t) x0, on a log-log scale, for step
/// sizes where h·1000 is 30 to 500 — far outside any explicit method's stability region (Dopri5 blows up there). x0
/// is the slow eigenvector (1, 1), so the stiff mode holds only rounding: it must stay damped.
module NeuralOde.Tests.Implicit.EsdirkConvergenceTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support
open NeuralOde.Tests.Implicit.StiffProblems

let private tEnd = 2.0
let private x0 = [| 1.0; 1.0 |]

/// The largest error at tEnd with n equal steps.
let private endError (solver: ButcherTableau) (n: int) =
    use x = Tensors.f64 x0
    use solution = Ode.odeint (Problems.linear stiffLinear) x [| 0.0; tEnd |] solver (StepControl.steps n)
    use final = solution.Final
    let exact = Reference.linearSolution stiffLinear x0 0.0 tEnd
    Array.map2 (fun a b -> abs (a - b)) (Tensors.toArray final) exact |> Array.max

let private stepCounts (solver: ButcherTableau) =
    match solver.Name with
    | "kvaerno3" -> [ 8; 16; 32; 64 ]
    | "kvaerno4" -> [ 8; 16; 32; 64 ]
    | "kencarp3" | "kencarp4" -> [ 8; 16; 32; 64 ]
    | _ -> [ 4; 8; 16; 32 ]

[<Tests>]
let tests =
    testList "Implicit/convergence" [
        for solver in Solvers.implicitSolvers do
            test $"{solver.Name}: fitted order {solver.Order} on a stiff linear system" {
                let ns = stepCounts solver
                let hs = ns |> List.map (fun n -> tEnd / float n) |> Array.ofList
                let errors = ns |> List.map (endError solver) |> Array.ofList
                let slope = Tensors.logLogSlope hs errors
                printfn $"{solver.Name}: fitted order {slope:F3}, errors %A{errors}"
                Expect.isLessThan (abs (slope - float solver.Order)) 0.25 $"fitted order {slope:F3} for errors %A{errors}"
            }
        test "dopri5 with the same steps is unstable there (from x0 = (2, 0), both modes)" {
            use x = Tensors.f64 [| 2.0; 0.0 |]
            let error =
                try
                    use solution = Ode.odeint (Problems.linear stiffLinear) x [| 0.0; tEnd |] Solvers.dopri5 (StepControl.steps 16)
                    use final = solution.Final
                    Tensors.toArray final |> Array.map abs |> Array.max
                with :? OdeSolveException -> infinity
            Expect.isGreaterThan error 1e3 "an explicit method's stiff mode grows"
        }
    ]
