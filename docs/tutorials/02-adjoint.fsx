(**
---
title: 2. Gradients by the adjoint
category: Tutorials
categoryindex: 1
index: 2
---

# 2. Gradients by the adjoint

Autograd through the solver stores every intermediate of every step; the adjoint (Chen et al. 2018) instead solves an
ODE backward in time for the gradient, in memory that does not grow with the steps. Its gradient is that of the
continuous problem, so it approaches autograd's as the tolerances tighten. This tutorial measures that: the gradient
of L = Σ x(3)² with respect to a field's parameters by autograd at a tight tolerance, against the adjoint and the
interpolated adjoint at looser ones. (C#: `Sensitivities.Adjoint()`, see [sensitivities](../sensitivities.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 1L |> ignore
let field = Sequential(Linear(2L, 32L, dtype = torch.float64), Tanh(), Linear(32L, 2L, dtype = torch.float64))
let f: VectorField = fun _ x -> field.forward x
let x0 = torch.randn(int64 (size 64 16), 2L, dtype = torch.float64)
// Larger weights than the default initialisation, and a span of 3: a field with some curvature to resolve.
do
    use _ = torch.no_grad()
    for p in field.parameters() do p.mul_(torch.tensor(3.0, dtype = torch.float64)) |> ignore
let parameters = field.parameters() |> Seq.map (fun p -> p :> torch.Tensor) |> Array.ofSeq

(**
One function computes the gradient of L under a sensitivity and a tolerance. An adjoint needs the
parameters it differentiates (`OdeProblem.withParameters`); `Ode.backward` is `loss.backward()` that raises a failed
backward solve as its own exception.
*)
let gradient (sensitivity: Sensitivity) (tolerance: float) =
    field.zero_grad()
    let problem = OdeProblem.create f x0 [| 0.0; 3.0 |] |> OdeProblem.withParameters parameters
    use solution = Ode.solveWith sensitivity problem Solvers.dopri5 (StepControl.adaptive tolerance (tolerance * 1e-2))
    use loss = solution.Final.square().sum()
    Ode.backward loss
    let g = torch.cat(parameters |> Array.map (fun p -> p.grad.flatten()), 0L).clone()
    g, solution.Statistics.FunctionEvaluations, solution.Backward.FunctionEvaluations

let reference, _, _ = gradient Sensitivity.Autograd (if quick then 1e-9 else 1e-10)
let relativeError (g: torch.Tensor) = (g - reference).norm().ToDouble() / reference.norm().ToDouble()

let tolerances = if quick then [| 1e-3; 1e-5 |] else [| 1e-3; 1e-4; 1e-5; 1e-6; 1e-7; 1e-8; 1e-9 |]
let measured =
    [| for tolerance in tolerances ->
        let adjoint, forward, backward = gradient Sensitivity.adjoint tolerance
        let interpolated, _, _ = gradient Sensitivity.interpolatedAdjoint tolerance
        printfn "rtol %g: adjoint %.2e, interpolated %.2e (evaluations forward %d, backward %d)"
            tolerance (relativeError adjoint) (relativeError interpolated) forward backward
        tolerance, relativeError adjoint, relativeError interpolated |]

(**
The relative distance to autograd's gradient falls with the tolerance, for both adjoints:
*)
let plot = new ScottPlot.Plot()
let logs (xs: float[]) = xs |> Array.map log10
let adjointLine = plot.Add.Scatter(logs (Array.map (fun (t, _, _) -> t) measured), logs (Array.map (fun (_, a, _) -> a) measured))
adjointLine.LegendText <- "adjoint (backsolve)"
let interpolatedLine = plot.Add.Scatter(logs (Array.map (fun (t, _, _) -> t) measured), logs (Array.map (fun (_, _, i) -> i) measured))
interpolatedLine.LegendText <- "interpolated adjoint"
plot.XLabel "log10 rtol"
plot.YLabel "log10 relative distance to autograd's gradient"
plot.ShowLegend() |> ignore
save plot "02-adjoint.png"

(**
![adjoint against autograd](02-adjoint.png)
*)
let _, tightest, _ = measured[measured.Length - 1]
check (tightest < 1e-4) $"at rtol {tolerances[tolerances.Length - 1]} the adjoint's gradient is within {tightest:E1} of autograd's"
