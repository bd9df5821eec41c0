/// A learned scalar function of the state — a Hamiltonian H(q, p) or a Lagrangian L(q, q̇) — and its gradient by
/// autograd inside a vector field (Hamiltonian and Lagrangian fields). Shapes are checked before libtorch sees them,
/// and gradients are taken with Internal.SafeAutograd: a field evaluated inside an adjoint's backward pass (a
/// callback from libtorch's engine) must raise, never abort the process.
module internal NeuralOde.Core.ScalarNetwork

open TorchSharp

type private Tensor = torch.Tensor

/// Fails unless `x` is a batch of states [N, 2n] (n = `coordinates`) of a floating-point dtype.
let checkState (owner: string) (coordinates: int) (x: Tensor) =
    if isNull x then raise (System.ArgumentNullException("x"))
    if x.IsInvalid then raise (System.ObjectDisposedException("x", $"{owner} got a disposed state."))
    if not (torch.is_floating_point x) then
        raise (System.ArgumentException($"{owner} needs a floating-point state; got dtype {x.dtype}.", "x"))
    if x.dim() <> 2L || x.shape[1] <> 2L * int64 coordinates then
        raise (System.ArgumentException($"{owner} with {coordinates} coordinate(s) needs a state [N, {2L * int64 coordinates}] (positions then velocities or momenta); got shape {Internal.TensorOps.shapeText x}.", "x"))

/// The network's value at `x` [N, 2n] as a vector [N]: it may return [N] or [N, 1]. `name` names the network in
/// errors ("hamiltonian", "lagrangian").
let evaluate (owner: string) (name: string) (network: torch.nn.Module<Tensor, Tensor>) (x: Tensor) : Tensor =
    let value =
        try network.forward x
        with e -> raise (System.InvalidOperationException($"The {name} of a {owner} failed on a state of shape {Internal.TensorOps.shapeText x} ({x.dtype}): {e.Message.Split('\n').[0]}", e))
    if isNull value then raise (System.ArgumentException($"The {name} of a {owner} returned null.", name))
    let n = x.shape[0]
    let scalarPerSample =
        (value.dim() = 1L && value.shape[0] = n) || (value.dim() = 2L && value.shape[0] = n && value.shape[1] = 1L)
    if not scalarPerSample then
        raise (System.ArgumentException($"The {name} of a {owner} must return one number per sample, [{n}] or [{n}, 1], for states of shape {Internal.TensorOps.shapeText x}; it returned shape {Internal.TensorOps.shapeText value}.", name))
    if value.dtype <> x.dtype then
        raise (System.ArgumentException($"The {name} of a {owner} returned dtype {value.dtype} for a state of dtype {x.dtype}; create the network with the state's dtype.", name))
    if value.dim() = 2L then value.reshape(n) else value

/// ∂(Σ_i outputs_i ⋅ seed_i)/∂x, zeros when nothing depends on x. The network must act on each sample alone (no batch
/// statistics), so that the gradient of the batch sum gives every sample its own gradient.
let gradient (output: Tensor) (seed: Tensor) (x: Tensor) (createGraph: bool) : Tensor =
    let g = if output.requires_grad then (Internal.SafeAutograd.grad [| output |] [| x |] [| seed |] createGraph)[0] else null
    if isNull g || g.IsInvalid then torch.zeros_like(x) else g

/// The state to differentiate at: x itself when it requires grad (its graph is kept, so gradients reach what x
/// came from), else a detached copy that does.
let differentiable (x: Tensor) : Tensor =
    if x.requires_grad then x else x.detach().requires_grad_(true)
