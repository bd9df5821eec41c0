(**
---
title: 3. Augmentation
category: Tutorials
categoryindex: 1
index: 3
---

# 3. Augmentation: why a Neural ODE cannot learn x ↦ −x, and how one more dimension fixes it

The flow of an ODE in one dimension is increasing: trajectories cannot cross, so no 1-D Neural ODE maps x to −x; its
error stays at the bound of any increasing map. Augmenting the state with one zero (ANODE: z(0) = [x; 0], Dupont et
al. 2019; *Dissecting Neural ODEs* §4.4) lets the flow go around. Both models below read the first coordinate of
z(1), with no readout layer that could do the work instead. (C#: `ZeroAugmentation`, see [models](../models.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 2L |> ignore
let x = torch.linspace(-1.0, 1.0, 64L).reshape(-1L, 1L)
let target = x.neg()

let vanillaField = Sequential(Linear(1L, 32L), Tanh(), Linear(32L, 1L))
let vanilla = new NeuralOdeModel(vanillaField, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
let augmentedField = Sequential(Linear(2L, 32L), Tanh(), Linear(32L, 2L))
let augmented = Sequential(new ZeroAugmentation(1L), new NeuralOdeModel(augmentedField, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |]))

let first (z: torch.Tensor) = z.narrow(1L, 0L, 1L)
let train (model: Module<torch.Tensor, torch.Tensor>) =
    let optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    let mutable last = 0.0
    for _ in 1 .. size 400 150 do
        use _ = torch.NewDisposeScope()
        let loss = (first (model.forward x) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step() |> ignore
        last <- loss.ToDouble()
    last

let vanillaLoss = train vanilla
let augmentedLoss = train augmented
printfn "MSE: vanilla %.4f (the bound of any increasing map: mean x² = %.4f), augmented %.5f"
    vanillaLoss (x.square().mean().ToDouble()) augmentedLoss

(**
The trajectories, s from 0 to 1 (the augmented model's first coordinate): the vanilla ones cannot cross, the
augmented ones do.
*)
let depths = Array.init 21 (fun k -> float k / 20.0)
let trajectories (f: torch.Tensor -> torch.Tensor) (z0: torch.Tensor) =
    use _ = torch.no_grad()
    use solution = Ode.odeint (fun _ z -> f z) z0 depths Solvers.rk4 (StepControl.steps 20)
    solution.States.narrow(2L, 0L, 1L).squeeze(2L).clone()   // [21, N]
let starts = torch.linspace(-1.0, 1.0, 11L).reshape(-1L, 1L)
let plot = new ScottPlot.Plot()
let draw (paths: torch.Tensor) (color: ScottPlot.Color) (label: string) =
    for i in 0L .. paths.shape[1] - 1L do
        let line = plot.Add.ScatterLine(depths, values (paths.select(1L, i)))
        line.Color <- color
        if i = 0L then line.LegendText <- label
draw (trajectories vanillaField.forward starts) ScottPlot.Colors.Gray "vanilla (1-D)"
draw (trajectories augmentedField.forward (torch.cat([| starts; torch.zeros_like starts |], 1L))) ScottPlot.Colors.RoyalBlue "augmented (2-D, first coordinate)"
plot.XLabel "depth s"
plot.YLabel "z(s)"
plot.ShowLegend() |> ignore
save plot "03-augmentation.png"

(**
![trajectories](03-augmentation.png)
*)
check (vanillaLoss > 0.25) $"the vanilla model stays near the flow bound (MSE {vanillaLoss:F3})"
check (augmentedLoss < vanillaLoss / 4.0) $"one augmented dimension fits (MSE {augmentedLoss:F4} against {vanillaLoss:F3})"
