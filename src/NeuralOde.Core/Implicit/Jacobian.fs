/// The Jacobian ∂f/∂y of an implicit step's Newton iteration, as a batch of blocks [B, d, d]: one block of the whole
/// flattened state (B = 1, d = n) for a dense Jacobian, or one per row of a batch [N, …] whose rows do not interact
/// (B = N, d = the entries of a row). By autograd, or by the caller's function.
module internal NeuralOde.Core.Implicit.Jacobian

open System
open TorchSharp
open NeuralOde.Core
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The blocks (B, d) of a state y under a structure.
let blocks (structure: JacobianStructure) (y: Tensor) : int64 * int64 =
    let n = y.numel()
    match structure with
    | JacobianStructure.Dense -> 1L, n
    | JacobianStructure.RowBlocks ->
        if y.dim() < 1L || y.shape[0] = 0L then
            raise (ArgumentException($"Per-row Jacobian blocks need a batch [N, …] of at least one row; the state has shape {TensorOps.shapeText y}. Use JacobianStructure.Dense.", "structure"))
        y.shape[0], n / y.shape[0]

/// ∂f/∂y at (t, y) by d vector–Jacobian products: seed k picks entry k of every block at once, which gives row k of
/// every block because the blocks do not interact. A field that does not depend on y has J = 0. Detached, in the
/// caller's dispose scope — or, when `recorded`, in the autograd graph (the products with create_graph, on y itself
/// when y requires grad), so that gradients flow through J to y and the field's parameters.
let private byAutogradWith (recorded: bool) (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (b: int64) (d: int64) : Tensor =
    use scope = torch.NewDisposeScope()
    use _ = torch.enable_grad()
    let x = if recorded && y.requires_grad then y.alias() else y.detach().requires_grad_(true)
    let fx = f t x
    let jacobian =
        if not fx.requires_grad then torch.zeros([| b; d; d |], dtype = y.dtype, device = y.device)
        else
            let rows =
                [| for k in 0L .. d - 1L do
                       let seed = torch.zeros([| b; d |], dtype = y.dtype, device = y.device)
                       (seed.select(1L, k)).fill_(TensorOps.oneScalar) |> ignore
                       // SafeAutograd: torch.autograd.grad would abort the process on a libtorch error.
                       let g = (SafeAutograd.grad [| fx |] [| x |] [| seed.reshape(fx.shape) |] recorded)[0]
                       if isNull g || g.IsInvalid then torch.zeros([| b; d |], dtype = y.dtype, device = y.device)
                       else g.reshape([| b; d |]) |]
            torch.stack(rows, 1L)
    (if recorded then jacobian else jacobian.detach()).MoveToOuterDisposeScope()

let private byAutograd f t y b d = byAutogradWith false f t y b d

/// The caller's Jacobian at (t, y), checked: [B, d, d], or [n, n] for a dense one. What it raises comes out as
/// VectorFieldFailed with the time; a wrong shape as VectorFieldMismatch.
let private byFunction (jacobian: float -> Tensor -> Tensor) (t: float) (y: Tensor) (b: int64) (d: int64) : Tensor =
    use _ = torch.no_grad()
    let j = OdeSolveException.Calling(t, fun () -> (use x = y.detach() in jacobian t x))
    let expected = [| b; d; d |]
    if isNull j || j.IsInvalid then
        raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t, $"The Jacobian function returned null or a disposed tensor at t = {t}."))
    if j.shape = expected then j.detach()
    elif b = 1L && j.shape = [| d; d |] then j.detach().reshape(expected)
    else
        let wanted = if b = 1L then $"[{d}, {d}]" else $"[{b}, {d}, {d}] (one block per row)"
        raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t, $"The Jacobian function returned shape {TensorOps.shapeText j} at t = {t}; the state {TensorOps.shapeText y} needs {wanted}."))

/// ∂f/∂y at (t, y) as blocks [B, d, d] (detached), by the options' function or by autograd.
let evaluate (options: NewtonOptions) (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (b: int64) (d: int64) : Tensor =
    match options.Jacobian with
    | Some jacobian -> byFunction jacobian t y b d
    | None -> byAutograd f t y b d

/// ∂f/∂y at (t, y) as blocks [B, d, d] in the autograd graph (a Rosenbrock step's stages depend on J, so the
/// gradient of the discrete solution needs J's own derivatives): by autograd with create_graph; the options'
/// function, when given, as a constant (its derivatives are not known).
let evaluateRecorded (options: NewtonOptions) (f: float -> Tensor -> Tensor) (t: float) (y: Tensor) (b: int64) (d: int64) : Tensor =
    match options.Jacobian with
    | Some jacobian -> byFunction jacobian t y b d
    | None -> byAutogradWith true f t y b d
