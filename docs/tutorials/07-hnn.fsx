(**
---
title: 7. Hamiltonian networks
category: Tutorials
categoryindex: 1
index: 7
---

# 7. Hamiltonian neural networks: learning a conserved energy

A plain Neural ODE fitted to a mass-spring's velocities (ẋ = (p, −q)) drifts in energy over long roll-outs. A
Hamiltonian neural network (Greydanus et al. 2019) learns a scalar H(q, p) instead and uses the field
(∂H/∂p, −∂H/∂q), which conserves the learned H exactly. Both are trained on the same (x, ẋ) pairs and rolled out over
many periods. (C#: `HamiltonianField`, see [physics](../physics.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 7L |> ignore
let x = torch.randn(256L, 2L, dtype = torch.float64)
let xDot = torch.stack([| x.select(1L, 1L); x.select(1L, 0L).neg() |], 1L)

let plain = Sequential(Linear(2L, 64L, dtype = torch.float64), Tanh(), Linear(64L, 2L, dtype = torch.float64))
let hnn = new HamiltonianField(1, Sequential(Linear(2L, 64L, dtype = torch.float64), Tanh(), Linear(64L, 1L, dtype = torch.float64)))

let fit (model: Module<torch.Tensor, torch.Tensor>) =
    let optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in 1 .. size 600 200 do
        use _ = torch.NewDisposeScope()
        let loss = (model.forward x - xDot).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step() |> ignore
fit plain
fit hnn

(**
Roll both out from (q, p) = (1, 0) over `periods` periods with RK4 and watch the true energy ½(q² + p²), which is ½:
*)
let periods = size 50 10
let times = Array.init (periods * 10 + 1) (fun k -> float k * 2.0 * System.Math.PI / 10.0)
let energy (model: Module<torch.Tensor, torch.Tensor>) =
    use x0 = torch.tensor([| 1.0; 0.0 |], dtype = torch.float64).reshape(1L, 2L)
    use solution = Ode.odeint (fun _ z -> model.forward z) x0 times Solvers.rk4 (StepControl.fixedStep 0.05)
    values (solution.States.square().sum(2L).mul(torch.tensor(0.5, dtype = torch.float64)).squeeze(1L))
let plainEnergy = energy plain
let hnnEnergy = energy hnn
let drift (e: float[]) = abs (e[e.Length - 1] - 0.5) / 0.5
printfn "relative energy drift after %d periods: plain %.1f%%, HNN %.1f%%" periods (100.0 * drift plainEnergy) (100.0 * drift hnnEnergy)

let plot = new ScottPlot.Plot()
let a = plot.Add.ScatterLine(times, plainEnergy)
a.LegendText <- "plain Neural ODE field"
let b = plot.Add.ScatterLine(times, hnnEnergy)
b.LegendText <- "Hamiltonian field"
plot.XLabel "t"
plot.YLabel "true energy ½(q² + p²)"
plot.ShowLegend() |> ignore
save plot "07-hnn.png"

(**
![energy](07-hnn.png)
*)
check (drift hnnEnergy < drift plainEnergy) $"the HNN drifts less ({100.0 * drift hnnEnergy:F1}%% against {100.0 * drift plainEnergy:F1}%%)"
