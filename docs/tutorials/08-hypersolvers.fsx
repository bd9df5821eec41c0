(**
---
title: 8. Hypersolvers
category: Tutorials
categoryindex: 1
index: 8
---

# 8. Hypersolvers: a cheap solver with a learned correction

A hypersolver (Poli et al. 2020) takes a base fixed-step method ψ and learns its local error:
z_{n+1} = z_n + hψ(t_n, z_n) + h^{p+1} g_ω(z_n, f(t_n, z_n)). Trained once against accurate solves of the field, it
runs at the base method's cost with a much smaller error. (C#: `Hypersolver`, see
[hypersolvers](../hypersolvers.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 21L |> ignore
let f64 = torch.float64
let mlp = Sequential(Linear(2L, 32L, dtype = f64), Tanh(), Linear(32L, 2L, dtype = f64))
do  // weights 1.5× the default initialisation: a field with some curvature
    use _ = torch.no_grad()
    for p in mlp.parameters() do p.mul_(torch.tensor(1.5, dtype = f64)) |> ignore
let field: VectorField = fun _ z -> mlp.forward z
torch.manual_seed 22L |> ignore
let hyper = Hypersolver(Solvers.euler, Sequential(Linear(4L, 64L, dtype = f64), Tanh(), Linear(64L, 2L, dtype = f64)))

(**
`Hypersolver.train` solves the training states once with Dopri5 (here at 1e-9), computes the residuals of the base
step on the 10-step grid and fits the correction to them by full-batch Adam:
*)
let losses = Hypersolver.train hyper field (torch.randn(int64 (size 1024 256), 2L, dtype = f64)) 0.0 1.0 10 600 3e-3 1e-9
printfn "correction loss: %.2e → %.2e" losses[0] losses[losses.Length - 1]

(**
Errors at the end time on fresh initial states, against Dopri5 at tight tolerance, for Euler with 10 to 640 steps
and for the hyper-Euler with 10:
*)
let stepCounts = [| 10; 20; 40; 80; 160; 320; 640 |]
let eulerErrors, hyperError =
    use _ = torch.no_grad()
    use z0 = torch.randn(512L, 2L, dtype = f64)
    use solution = Ode.odeint field z0 [| 0.0; 1.0 |] Solvers.dopri5 (StepControl.adaptive 1e-10 1e-10)
    let error (z: torch.Tensor) = (z - solution.Final).abs().max().ToDouble()
    let euler (n: int) =
        use s = Ode.odeint field z0 [| 0.0; 1.0 |] Solvers.euler (StepControl.steps n)
        error s.Final
    use hyperStates = hyper.Solve(field, z0, 0.0, 1.0, 10)
    Array.map euler stepCounts, error hyperStates.[-1]
for n, e in Array.zip stepCounts eulerErrors do printfn "Euler, %3d steps: %.2e" n e
printfn "hyper-Euler, 10 steps: %.2e" hyperError

let plot = new ScottPlot.Plot()
let euler = plot.Add.Scatter(stepCounts |> Array.map (float >> log10), eulerErrors |> Array.map log10)
euler.LegendText <- "Euler"
let h = plot.Add.ScatterPoints([| log10 10.0 |], [| log10 hyperError |])
h.LegendText <- "hyper-Euler, 10 steps"
h.MarkerSize <- 12.0f
plot.XLabel "log10 steps"
plot.YLabel "log10 max error at t = 1"
plot.ShowLegend() |> ignore
save plot "08-hypersolvers.png"

(**
![errors](08-hypersolvers.png)
*)
check (hyperError < eulerErrors[0] / 2.0) $"the hyper-Euler at 10 steps beats Euler at 10 ({hyperError:E1} against {eulerErrors[0]:E1})"
