/// The benchmark workloads. W1: one training iteration (forward, backward through the solver, Adam step) of a
/// Neural ODE classifier on 2-D concentric annuli: batch 1024, vector field MLP 2→64→64→2 with tanh, RK4 with 20
/// steps on [0, 1], linear readout, cross-entropy; float32.
module NeuralOde.Benchmarks.Workloads

open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets

/// A W1 trainer: `step ()` runs one iteration in its own dispose scope and returns the loss.
type W1(batch: int, width: int, solver: ButcherTableau, control: StepControl, seed: int) =
    do torch.manual_seed(int64 seed) |> ignore
    let generator = torch.Generator(uint64 seed)
    let field = Sequential(Linear(2L, int64 width), Tanh(), Linear(int64 width, int64 width), Tanh(), Linear(int64 width, 2L))
    let model = new NeuralOdeModel(field, solver, control, [| 0.0; 1.0 |])
    let readout = Linear(2L, 2L)
    let optimizer = torch.optim.Adam(Seq.append (model.parameters()) (readout.parameters()), 1e-3)

    member _.Model = model

    member _.Step() =
        use _ = torch.NewDisposeScope()
        let x, y = Annuli.sample batch 0.1 torch.float32 generator
        optimizer.zero_grad()
        let loss = functional.cross_entropy(readout.forward(model.forward x), y)
        loss.backward()
        optimizer.step() |> ignore
        loss.ToDouble()

    static member Standard(seed) = W1(1024, 64, Solvers.rk4, StepControl.steps 20, seed)
