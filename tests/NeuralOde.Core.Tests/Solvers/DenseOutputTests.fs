/// Dense output: a value requested inside a step converges at the order of the interpolant, so output times never
/// need to force steps.
module NeuralOde.Tests.Solvers.DenseOutputTests

open Expecto
open NeuralOde.Core
open NeuralOde.Tests.Support

/// Error at t = 0.7 (inside a step for every n used) with n equal steps on [0, 2].
let private interiorError (solver: ButcherTableau) (n: int) =
    use x0 = Tensors.f64 [| 1.0; 1.0 |]
    use solution = Ode.odeint Problems.nonlinear x0 [| 0.0; 0.7; 2.0 |] solver (StepControl.steps n)
    use mid = solution.States[1]
    Array.map2 (fun a b -> abs (a - b)) (Tensors.toArray mid) (Problems.nonlinearExact 0.7) |> Array.max

[<Tests>]
let tests =
    testList "Solvers" [
        for solver, minimum in [ Solvers.dopri5, 3.8; Solvers.tsit5, 3.8; Solvers.rk4, 3.5; Solvers.bosh3, 2.8; Solvers.dopri8, 5.5 ] do
            test $"{solver.Name}/dense output converges at order {minimum} or better inside steps" {
                let ns = [| 8; 12; 16; 24; 32 |]
                let errors = ns |> Array.map (interiorError solver)
                let slope = Tensors.logLogSlope (ns |> Array.map (fun n -> 2.0 / float n)) errors
                Expect.isGreaterThan slope minimum $"fitted order {slope:F3} for errors %A{errors}"
            }
        test "dopri5/an output time on a step end returns the step's own value" {
            use x0 = Tensors.f64 [| 1.0; 1.0 |]
            use a = Ode.odeint Problems.nonlinear x0 [| 0.0; 0.5; 1.0 |] Solvers.dopri5 (StepControl.steps 4)
            use b = Ode.odeint Problems.nonlinear x0 [| 0.0; 0.5 |] Solvers.dopri5 (StepControl.steps 2)
            use am = a.States[1]
            use bm = b.States[1]
            Expect.equal (Tensors.toArray am) (Tensors.toArray bm) "bit-identical"
        }
    ]
