/// What the compiled backend's tests share: fixed inputs, seeded MLP fields, and a block's output
/// with the gradients of a fixed loss by the fused or the generic path.
module NeuralOde.Tests.FieldBackends.CompiledBlocks

open Expecto
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Tests.Support

type Tensor = torch.Tensor
type Layer = Module<Tensor, Tensor>

/// A standard-normal input from a generator of its own: the tests compare the two paths on fixed inputs (the global
/// generator is shared with the tests running beside them).
let input (shape: int64[]) (dtype: torch.ScalarType) (seed: int) =
    use g = torch.Generator(uint64 seed)
    torch.randn(shape, dtype = dtype, generator = g)

let activation (name: string) : Layer =
    match name with
    | "tanh" -> Tanh()
    | "sigmoid" -> Sigmoid()
    | "relu" -> ReLU()
    | _ -> Softplus()

/// An MLP field in features → width → width → features with the activation, parameters from a seeded generator.
let mlp (dtype: torch.ScalarType) (features: int) (width: int) (act: string) (seed: int) =
    let field = Sequential(Linear(int64 features, int64 width), activation act, Linear(int64 width, int64 width), activation act,
                           Linear(int64 width, int64 features))
    field.``to``(dtype) |> ignore
    Tensors.initialize seed 0.5 field
    field

/// The block's output and the gradients of a fixed loss w.r.t. x and every parameter (zeros for one without a
/// gradient), by the fused or the generic path, with the forward solve's statistics.
let outputAndGradients (block: NeuralOdeModel) (x: Tensor) (fused: bool) =
    block.Backend <- Compiled.choice (fused)
    use xg = x.detach().clone().requires_grad_(true)
    for p in block.parameters() do p.grad <- null
    use y = block.forward xg
    Expect.equal (Compiled.ran block) fused "the solver the test asked for ran"
    use w = torch.linspace(-1.0, 1.0, y.numel(), dtype = y.dtype).reshape(y.shape)
    use loss = (y * y * w).sum()
    Ode.backward loss
    let gradient (p: Tensor) = if isNull p.grad then Array.zeroCreate (int (p.numel())) else Tensors.toArray p.grad
    Tensors.toArray y, [ yield Tensors.toArray xg.grad; for p in block.parameters() -> gradient p ], block.LastStatistics

/// Checks that the fused path's output, gradients and statistics agree with the generic path's.
let agree (tolerance: float) (what: string) (fused: float[] * float[] list * SolveStatistics) (generic: float[] * float[] list * SolveStatistics) =
    let yF, gF, sF = fused
    let yG, gG, sG = generic
    Expect.isLessThan (Tensors.relativeError yF yG) tolerance $"{what}: the output"
    List.iteri2 (fun i a b -> Expect.isLessThan (Tensors.relativeError a b) tolerance $"{what}: gradient {i} (0: x, then the parameters)") gF gG
    Expect.equal (Compiled.counts sF) (Compiled.counts sG) $"{what}: the same steps and evaluations"
