(**
---
title: 4. Data control
category: Tutorials
categoryindex: 1
index: 4
---

# 4. Data control: the input as a parameter of the field

Another fix for x ↦ −x that keeps the state one-dimensional, from §4.1 of *Dissecting Neural ODEs*: let the field see the
block's input, dz/ds = f(z, x). The map x ↦ z(1) is then a family of flows, one per x, and need not be increasing.
`DataControl` first in the field appends x to z at every evaluation — the adjoint's backward solve included.
(C#: `new DataControl()`, see [models](../models.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 3L |> ignore
let x = torch.linspace(-1.0, 1.0, 64L).reshape(-1L, 1L)
let target = x.neg()
let block = new NeuralOdeModel(Sequential(new DataControl(), Linear(2L, 32L), Tanh(), Linear(32L, 1L)),
                               Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
let optimizer = torch.optim.Adam(block.parameters(), 1e-2)
let mutable loss = 0.0
for _ in 1 .. size 400 150 do
    use _ = torch.NewDisposeScope()
    let l = (block.forward x - target).square().mean()
    optimizer.zero_grad()
    l.backward()
    optimizer.step() |> ignore
    loss <- l.ToDouble()
printfn "MSE with data control: %.5f (a 1-D Neural ODE cannot go below %.3f)" loss (x.square().mean().ToDouble())

(**
The trajectories cross: each one follows its own field. `block.Trajectory(x, depths)` solves the block with outputs
at several depths (served by dense output between its 10 steps):
*)
let depths = Array.init 21 (fun k -> float k / 20.0)
let starts = torch.linspace(-1.0, 1.0, 11L).reshape(-1L, 1L)
let paths =
    use _ = torch.no_grad()
    use solution = block.Trajectory(starts, depths)
    solution.States.squeeze(2L).clone()   // [21, 11]
let plot = new ScottPlot.Plot()
for i in 0L .. 10L do
    plot.Add.ScatterLine(depths, values (paths.select(1L, i))) |> ignore
plot.XLabel "depth s"
plot.YLabel "z(s)"
plot.Title "Data-controlled trajectories: z(1) = −x"
save plot "04-data-control.png"

(**
![trajectories](04-data-control.png)
*)
check (loss < 0.05) $"data control fits the reflection (MSE {loss:F4})"
