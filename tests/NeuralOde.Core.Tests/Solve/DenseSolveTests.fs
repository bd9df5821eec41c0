/// Ode.solveDense: the trajectory evaluated anywhere in the span, against the exact solution (float64), by autograd,
/// backward in time, and its refusals.
module NeuralOde.Tests.Solve.DenseSolveTests

open System
open Expecto
open TorchSharp
open NeuralOde.Core
open NeuralOde.Tests.Support

[<Tests>]
let tests =
    testList "Solve/dense" [
        for solver in [ Solvers.dopri5; Solvers.tsit5; Solvers.dopri8; Solvers.bosh3 ] do
            test $"{solver.Name}: evaluations between the outputs match the exact solution" {
                use x0 = Tensors.f64 [| 1.0; 1.0 |]
                let problem = OdeProblem.create Problems.nonlinear x0 [| 0.0; 2.0 |]
                let solution, trajectory = Ode.solveDense problem solver (StepControl.adaptive 1e-10 1e-12)
                use _ = solution
                use _ = trajectory
                Expect.equal (trajectory.Start, trajectory.End) (0.0, 2.0) "the span"
                let times = [| 0.0; 0.05; 0.333; 0.7; 1.234; 1.9; 2.0 |]
                use all = trajectory.Evaluate times
                for i, t in Array.indexed times do
                    use x = all[int64 i]
                    let error = Array.map2 (fun a b -> abs (a - b)) (Tensors.toArray x) (Problems.nonlinearExact t) |> Array.max
                    // Bosh3's dense output is third order: looser.
                    Expect.isLessThan error (if solver.Name = "bosh3" then 1e-6 else 1e-8) $"x({t})"
            }
        test "evaluations are differentiable: d x(t)/d x0 = e^{−t} for x' = −x, at times inside steps" {
            use x0 = torch.tensor([| 0.5 |], dtype = torch.float64, requires_grad = true)
            let solution, trajectory = Ode.solveDense (OdeProblem.create (fun _ x -> x.neg()) x0 [| 0.0; 1.0 |]) Solvers.dopri5 (StepControl.adaptive 1e-10 1e-12)
            use _ = solution
            use _ = trajectory
            use x = trajectory.Evaluate 0.37
            x.backward()
            Expect.floatClose Accuracy.high (x0.grad.ToDouble()) (exp -0.37) "autograd through the interpolant"
        }
        test "a backward span is evaluated too" {
            use x0 = Tensors.f64 [| 1.0 |]
            let solution, trajectory = Ode.solveDense (OdeProblem.create (fun _ x -> x.neg()) x0 [| 1.0; 0.0 |]) Solvers.tsit5 (StepControl.adaptive 1e-10 1e-12)
            use _ = solution
            use _ = trajectory
            use x = trajectory.Evaluate 0.25
            Expect.floatClose Accuracy.high (x.ToDouble()) (exp 0.75) "x(0.25) = e^{0.75} from x(1) = 1"
        }
        test "times outside the span and running losses are refused, naming them" {
            use x0 = Tensors.f64 [| 1.0 |]
            let problem = OdeProblem.create (fun _ x -> x.neg()) x0 [| 0.0; 1.0 |]
            let solution, trajectory = Ode.solveDense problem Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8)
            use _ = solution
            (trajectory :> IDisposable).Dispose()
            let e = Raises.raises<ArgumentOutOfRangeException> (fun () ->
                let s, t = Ode.solveDense problem Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8)
                use _ = s
                use _ = t
                t.Evaluate 1.5 |> ignore)
            Expect.equal e.ParamName "t" "names t"
            let e = Raises.raises<ArgumentException> (fun () ->
                Ode.solveDense (problem |> OdeProblem.withIntegralLoss (fun _ x -> x.sum())) Solvers.dopri5 (StepControl.adaptive 1e-6 1e-8) |> ignore)
            Expect.stringContains e.Message "running loss" "says why"
            Expect.equal (Tensors.toArray x0) [| 1.0 |] "x0 outlives the trajectory"
        }
    ]
