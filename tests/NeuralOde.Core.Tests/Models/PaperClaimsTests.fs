/// The paper's claims about its models, as tests that can fail (Massaroli et al. 2020, §4; Dupont et al. 2019):
/// with one training budget, a vanilla 1-D Neural ODE cannot fit the reflection φ(x) = −x — its flow is a
/// homeomorphism, so the best it can do is the constant 0, loss E[x²] ≈ 1/3 — while zero-augmented, data-controlled
/// and adaptive-depth models can; augmented models separate concentric annuli.
module NeuralOde.Tests.Models.PaperClaimsTests

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets
open NeuralOde.Tests.Support
open NeuralOde.Tests.Support.Modules


/// The first `n` columns (a fixed readout that learns nothing, so no model can cheat by a learned sign flip).
type private FirstColumns(n: int64) =
    inherit Module<torch.Tensor, torch.Tensor>("first_columns")
    override _.forward(x) = x.narrow(1L, 0L, n)

let private iterations = 300

/// Trains `model` on φ(x) = −x over 64 points of [−1, 1] (full batch, MSE, Adam) and returns the final loss.
let private fitReflection (seed: int) (model: Module<torch.Tensor, torch.Tensor>) =
    Tensors.initialize seed 0.5 model
    use x = torch.linspace(-1.0, 1.0, 64L).reshape(64L, 1L)
    use target = x.neg()
    use optimizer = torch.optim.Adam(model.parameters(), 0.02)
    let mutable last = nan
    for _ in 1 .. iterations do
        use _ = torch.NewDisposeScope()
        optimizer.zero_grad()
        let loss = (model.forward x - target).square().mean()
        loss.backward()
        optimizer.step() |> ignore
        last <- loss.ToDouble()
    last

let private mlp (inputs: int64) (outputs: int64) = chain [ m (Linear(inputs, 16L)); m (Tanh()); m (Linear(16L, outputs)) ]
let private rk4 = StepControl.steps 10

/// Trains a classifier on fresh annuli batches (cross-entropy) and returns its accuracy on 2,000 new points.
let private annuliAccuracy (seed: int) (model: Module<torch.Tensor, torch.Tensor>) =
    Tensors.initialize seed 0.3 model
    use g = torch.Generator(uint64 seed)
    use optimizer = torch.optim.Adam(model.parameters(), 0.02)
    for _ in 1 .. 200 do
        use _ = torch.NewDisposeScope()
        let x, y = Annuli.sample 256 0.1 torch.float32 g
        optimizer.zero_grad()
        let loss = functional.cross_entropy(model.forward x, y)
        loss.backward()
        optimizer.step() |> ignore
    use _ = torch.NewDisposeScope()
    use _ = torch.no_grad()
    let x, y = Annuli.sample 2000 0.1 torch.float32 g
    (model.forward x).argmax(1L).eq(y).to_type(torch.float64).mean().ToDouble()

[<Tests>]
let tests =
    testList "Models/paper claims" [
        test "reflection φ(x) = −x: a vanilla 1-D Neural ODE cannot fit it (loss stays near E[x²] ≈ 1/3)" {
            use model = new NeuralOdeModel(mlp 1L 1L, Solvers.rk4, rk4, [| 0.0; 1.0 |])
            let loss = fitReflection 1 model
            Expect.isGreaterThan loss 0.25 $"vanilla loss {loss:F4} after {iterations} iterations"
        }
        test "reflection φ(x) = −x: zero augmentation fits it (one extra dimension, no learned readout)" {
            use model = chain [ m (new ZeroAugmentation(1L)); m (new NeuralOdeModel(mlp 2L 2L, Solvers.rk4, rk4, [| 0.0; 1.0 |])); m (new FirstColumns(1L)) ]
            let loss = fitReflection 2 model
            Expect.isLessThan loss 0.02 $"zero-augmented loss {loss:F4}"
        }
        test "reflection φ(x) = −x: a data-controlled Neural ODE fits it" {
            use model = new NeuralOdeModel(chain [ m (new DataControl()); m (Linear(2L, 16L)); m (Tanh()); m (Linear(16L, 1L)) ], Solvers.rk4, rk4, [| 0.0; 1.0 |])
            let loss = fitReflection 3 model
            Expect.isLessThan loss 0.02 $"data-controlled loss {loss:F4}"
        }
        test "reflection φ(x) = −x: an adaptive-depth Neural ODE fits it (each sample stops at its own depth)" {
            let field = chain [ m (new DepthCat()); m (Linear(2L, 16L)); m (Tanh()); m (Linear(16L, 1L)) ]
            use model = new AdaptiveDepthModel(field, mlp 1L 1L, Solvers.rk4, rk4)
            let loss = fitReflection 4 model
            Expect.isLessThan loss 0.02 $"adaptive-depth loss {loss:F4}"
        }
        test "concentric annuli: a zero-augmented Neural ODE reaches ≥ 99% test accuracy" {
            use model = chain [ m (new ZeroAugmentation(1L)); m (new NeuralOdeModel(mlp 3L 3L, Solvers.rk4, StepControl.steps 8, [| 0.0; 1.0 |])); m (Linear(3L, 2L)) ]
            let accuracy = annuliAccuracy 5 model
            Expect.isGreaterThanOrEqual accuracy 0.99 $"accuracy {accuracy:P2}"
        }
        test "concentric annuli: an input-layer-augmented Neural ODE reaches ≥ 99% test accuracy" {
            use model = chain [ m (new InputLayerAugmentation(Linear(2L, 3L))); m (new NeuralOdeModel(mlp 3L 3L, Solvers.rk4, StepControl.steps 8, [| 0.0; 1.0 |])); m (Linear(3L, 2L)) ]
            let accuracy = annuliAccuracy 6 model
            Expect.isGreaterThanOrEqual accuracy 0.99 $"accuracy {accuracy:P2}"
        }
    ]
