(**
---
title: 1. A first Neural ODE
category: Tutorials
categoryindex: 1
index: 1
---

# 1. A first Neural ODE

A Neural ODE block maps its input x to z(1), the solution at depth 1 of dz/ds = f_θ(z) from z(0) = x, where f_θ is a
small network. Here one block and a linear readout learn to separate two moons, and we look at how the flow moves the
points. (C#: the same steps are in the README's "A first trained block" and in
`examples/ModelZoo`.)
*)
(*** hide ***)
#load ".setup.fsx"
open Setup
(**
Everything comes from `NeuralOde.Core` and TorchSharp:
*)
open NeuralOde.Core
open NeuralOde.Core.Datasets
open TorchSharp
open type TorchSharp.torch.nn

torch.manual_seed 0L |> ignore
let generator = new torch.Generator(1UL)

(**
The field f_θ is any TorchSharp module mapping [N, 2] to [N, 2]. `NeuralOdeModel` solves it with RK4 in 10 steps on
[0, 1] and is itself a module, so it goes into a `Sequential` with the readout:
*)
let field = Sequential(Linear(2L, 32L), Tanh(), Linear(32L, 2L))
let block = new NeuralOdeModel(field, Solvers.rk4, StepControl.steps 10, [| 0.0; 1.0 |])
let model = Sequential(block, Linear(2L, 2L))
let optimizer = torch.optim.Adam(model.parameters(), 1e-2)

(**
Training is an ordinary TorchSharp loop. Each iteration runs in a dispose scope, so native memory stays flat:
*)
let iterations = size 300 60
for i in 1 .. iterations do
    use _ = torch.NewDisposeScope()
    let x, y = Moons.sample 256 0.1 torch.float32 generator
    let loss = functional.cross_entropy(model.forward x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step() |> ignore
    if i % 50 = 0 then printfn "iteration %d: loss %.4f" i (loss.ToDouble())

let testX, testY = Moons.sample 1000 0.1 torch.float32 generator
let accuracy =
    use _ = torch.no_grad()
    model.forward(testX).argmax(1L).eq(testY).to_type(torch.float32).mean().ToDouble()
printfn "test accuracy: %.1f%%" (100.0 * accuracy)

(**
The block's statistics say what the last solve cost (10 RK4 steps: 40 evaluations):
*)
printfn "%O" block.LastStatistics

(**
To see the flow, solve the trained field at 20 depths with `Ode.odeint` and draw the paths of 200 test points (every
fifth: the data set lists one class, then the other). The classes end up linearly separable at s = 1, where the
readout draws its line:
*)
let paths =
    use _ = torch.no_grad()
    let depths = Array.init 21 (fun k -> float k / 20.0)
    use solution = Ode.odeint (fun _ z -> field.forward z) testX.[torch.TensorIndex.Slice(0L, 1000L, 5L)] depths Solvers.rk4 (StepControl.steps 20)
    solution.States.clone()   // [21, 200, 2]

let plot = new ScottPlot.Plot()
let labels = values testY.[torch.TensorIndex.Slice(0L, 1000L, 5L)]
for p in 0 .. 199 do
    let xs = values paths.[torch.TensorIndex.Colon, torch.TensorIndex.Single(int64 p), torch.TensorIndex.Single(0L)]
    let ys = values paths.[torch.TensorIndex.Colon, torch.TensorIndex.Single(int64 p), torch.TensorIndex.Single(1L)]
    let line = plot.Add.ScatterLine(xs, ys)
    line.Color <- (if labels[p] = 0.0 then ScottPlot.Colors.OrangeRed else ScottPlot.Colors.RoyalBlue).WithAlpha(0.5)
plot.Title "Trajectories of the trained flow, s from 0 to 1"
save plot "01-first-neural-ode.png"

(**
![trajectories](01-first-neural-ode.png)

In quick mode (`--quick`, what the test command runs) the training is short; the check below holds there too.
*)
check (accuracy > 0.85) $"test accuracy {100.0 * accuracy:F1}%% > 85%%"
