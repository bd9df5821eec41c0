/// Empirical convergence order: the error at the end of a fixed-step solve with a known solution against the step
/// size, on a log-log scale (float64). The fitted slope must be within 0.2 of the method's order, in a range of
/// steps where the method is asymptotic and the error is far above rounding. The problem is the nonlinear,
/// time-dependent one (every order condition matters), except for the two 5(4) pairs: their fifth-order error
/// constant nearly cancels on it, so their slope wanders between 5.3 and 6.9 until rounding error takes over; their
/// order is fitted on dx/dt = A x against exp(A t) x0 instead, and the nonlinear problem checks they reach at least
/// order 5 (a failing nonlinear order condition would pull the slope below it).
module NeuralOde.Tests.Solvers.ConvergenceTests

open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

type private Case = { Problem: VectorField; X0: float[]; TEnd: float; Exact: float[] }

let private nonlinear = { Problem = Problems.nonlinear; X0 = [| 1.0; 1.0 |]; TEnd = 2.0; Exact = Problems.nonlinearExact 2.0 }

let private linear =
    let a = [| [| -0.3; 2.0 |]; [| -2.0; -0.3 |] |]
    { Problem = Problems.linear a; X0 = [| 1.0; 0.5 |]; TEnd = 4.0; Exact = Reference.linearSolution a [| 1.0; 0.5 |] 0.0 4.0 }

/// Error at the end time with n equal steps.
let private endError (case: Case) (solver: ButcherTableau) (n: int) =
    use x0 = Tensors.f64 case.X0
    use solution = Ode.odeint case.Problem x0 [| 0.0; case.TEnd |] solver (StepControl.steps n)
    use final = solution.Final
    Array.map2 (fun a b -> abs (a - b)) (Tensors.toArray final) case.Exact |> Array.max

/// The fitted order of convergence, and the errors it was fitted on.
let private fittedOrder (case: Case) (solver: ButcherTableau) (ns: int list) =
    let hs = ns |> List.map (fun n -> case.TEnd / float n) |> Array.ofList
    let errors = ns |> List.map (endError case solver) |> Array.ofList
    Tensors.logLogSlope hs errors, errors

/// Where each method's order is fitted: the problem and the step counts.
let private orderCase (solver: ButcherTableau) =
    match solver.Name with
    | "euler" -> nonlinear, [ 200; 400; 800; 1600 ]
    | "midpoint" | "heun" -> nonlinear, [ 50; 100; 200; 400 ]
    | "bosh3" -> nonlinear, [ 25; 50; 100; 200 ]
    | "rk4" -> nonlinear, [ 16; 24; 32; 48; 64 ]
    | "dopri5" | "tsit5" -> linear, [ 64; 96; 128; 192; 256 ]
    | _ -> nonlinear, [ 6; 8; 10; 12; 14 ]

[<Tests>]
let tests =
    testList "Solvers" [
        for solver in Solvers.all do
            test $"{solver.Name}/convergence order is {solver.Order}" {
                let case, ns = orderCase solver
                let slope, errors = fittedOrder case solver ns
                Expect.isLessThan (abs (slope - float solver.Order)) 0.2 $"fitted order {slope:F3} for errors %A{errors}"
            }
        for solver in [ Solvers.dopri5; Solvers.tsit5 ] do
            test $"{solver.Name}/reaches order {solver.Order} on a nonlinear problem" {
                let slope, errors = fittedOrder nonlinear solver [ 16; 24; 32; 48 ]
                Expect.isGreaterThan slope (float solver.Order - 0.2) $"fitted order {slope:F3} for errors %A{errors}"
            }
    ]
