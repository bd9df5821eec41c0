(**
---
title: 6. A continuous normalizing flow
category: Tutorials
categoryindex: 1
index: 6
---

# 6. A continuous normalizing flow

A CNF (Chen et al. 2018; FFJORD, Grathwohl et al. 2019) moves data x along dz/dt = f(t, z) to a standard normal base;
the change of variables gives log p(x) = log N(z(1); 0, I) + ∫ tr(∂f/∂z) dt, solved with z as one augmented state.
Hutchinson's estimator gives the trace from one vector–Jacobian product. Here a flow learns a mixture of four
Gaussians on a circle. (C#: `ContinuousNormalizingFlow`, see [flows](../flows.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open NeuralOde.Core.Datasets
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 6L |> ignore
let generator = new torch.Generator(6UL)
let mixture = GaussianMixture.onCircle 4 2.0 0.3
let field = Sequential(Linear(2L, 32L, dtype = torch.float64), Tanh(), Linear(32L, 32L, dtype = torch.float64), Tanh(),
                       Linear(32L, 2L, dtype = torch.float64))
// Gradients by the adjoint: memory flat in the steps, and on this standard MLP field the compiled field backend
// computes the augmented field and its products (see the performance page).
let flow = new Cnf("cnf", field, 2, Hutchinson Rademacher, Solvers.rk4, StepControl.steps 8, Sensitivity.adjoint, 0.0, 1.0, null)
let optimizer = torch.optim.Adam(flow.parameters(), 1e-2)

let testX, _ = GaussianMixture.sample mixture 1000 torch.float64 generator
let meanLogLikelihood () =
    use _ = torch.no_grad()
    flow.LogProbability(testX).mean().ToDouble()
let before = meanLogLikelihood ()
for i in 1 .. size 300 60 do
    use _ = torch.NewDisposeScope()
    let x, _ = GaussianMixture.sample mixture 256 torch.float64 generator
    let loss = flow.LogProbability(x).mean().neg()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step() |> ignore
let after = meanLogLikelihood ()
let exact = (GaussianMixture.logDensity mixture testX).mean().ToDouble()
printfn "mean test log-likelihood: %.3f before training, %.3f after (the true density gives %.3f)" before after exact

(**
Samples: z ~ N(0, I) solved backward through the flow (`Decode`), against the data.
*)
let samples =
    use _ = torch.no_grad()
    use z = torch.randn(1000L, 2L, dtype = torch.float64)
    flow.Decode(z, null).clone()
let plot = new ScottPlot.Plot()
let data = plot.Add.ScatterPoints(values (testX.select(1L, 0L)), values (testX.select(1L, 1L)))
data.LegendText <- "data"
let drawn = plot.Add.ScatterPoints(values (samples.select(1L, 0L)), values (samples.select(1L, 1L)))
drawn.LegendText <- "flow samples"
plot.ShowLegend() |> ignore
plot.Axes.SquareUnits()
save plot "06-cnf.png"

(**
![samples](06-cnf.png)
*)
check (after > before + 0.3) $"training raised the test log-likelihood from {before:F2} to {after:F2}"
