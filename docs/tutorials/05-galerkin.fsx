(**
---
title: 5. Galerkin depth variance
category: Tutorials
categoryindex: 1
index: 5
---

# 5. Depth-variant weights: Galerkin Neural ODEs

A Neural ODE's field usually has the same weights at every depth s. *Dissecting Neural ODEs* (§3) lets them vary:
θ(s) = Σ_j α_j ψ_j(s) on a basis ψ (Fourier, Legendre, Chebyshev, polynomial), trained through the coefficients α — a
Galerkin Neural ODE (torchdyn's `GalLinear`). The block tells each depth-aware layer the depth before every
evaluation, so `GalLinear` sits in a `Sequential` between ordinary layers. (C#: `GalerkinLinear`, see
[the paper's gradients](../paper-gradients.html).)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(** *)
open NeuralOde.Core
open NeuralOde.Core.Datasets
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 5L |> ignore
let generator = new torch.Generator(5UL)
let galerkin = new GalLinear(16L, 16L, Basis.fourier 2 1.0)   // 5 Fourier terms on [0, 1]
let field = Sequential(Linear(2L, 16L), Tanh(), galerkin, Tanh(), Linear(16L, 2L))
let block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
let model = Sequential(block, Linear(2L, 2L))
let optimizer = torch.optim.Adam(model.parameters(), 1e-2)

for i in 1 .. size 300 80 do
    use _ = torch.NewDisposeScope()
    let x, y = Moons.sample 256 0.1 torch.float32 generator
    let loss = functional.cross_entropy(model.forward x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step() |> ignore

let testX, testY = Moons.sample 1000 0.1 torch.float32 generator
let accuracy =
    use _ = torch.no_grad()
    model.forward(testX).argmax(1L).eq(testY).to_type(torch.float32).mean().ToDouble()
printfn "test accuracy on the moons: %.1f%%" (100.0 * accuracy)

(**
The learned weights as functions of depth: `WeightsAt s` gives θ(s), here five of its entries over [0, 1].
They start at zero (the layer's coefficients do) and are smooth in s by construction.
*)
let depths = Array.init 51 (fun k -> float k / 50.0)
let thetas =
    use _ = torch.no_grad()
    depths |> Array.map (fun s -> values (galerkin.WeightsAt s))
let plot = new ScottPlot.Plot()
for entry in [ 0; 17; 34; 51; 68 ] do
    let line = plot.Add.ScatterLine(depths, thetas |> Array.map (fun theta -> theta[entry]))
    line.LegendText <- $"θ_{entry}(s)"
plot.XLabel "depth s"
plot.YLabel "weight"
plot.ShowLegend() |> ignore
save plot "05-galerkin.png"

(**
![weights over depth](05-galerkin.png)

The gradients of α are those of Corollary 1 of the paper (the projection of Theorem 1's functional gradient on the
basis); `InfiniteDimensionalGradient` computes them from the theorems, and the tests check them against autograd and
the adjoints.
*)
let spread = thetas |> Array.map (fun theta -> theta[17]) |> fun v -> Array.max v - Array.min v
check (accuracy > 0.85) $"the Galerkin model classifies the moons ({100.0 * accuracy:F1}%%)"
check (spread > 1e-3) $"its weights vary with depth (θ_17 spans {spread:F3})"
