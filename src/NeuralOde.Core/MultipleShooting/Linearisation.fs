/// Products with the segment Jacobians J_k = ∂φ_k/∂b_k of a stacked flow Φ = φ(X), all exact through the fine
/// solver's operations: Jacobian–vector products by the double-backward identity (u = Jᵀw is linear in w, so
/// ∂(u·v)/∂w = J v), vector–Jacobian products by one reverse pass, and whole Jacobians row by row. The segments are
/// independent, so J is block diagonal and one pass serves every segment at once.
module internal NeuralOde.Core.Linearisation

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The reverse products Jᵀw of Φ = φ(X) (X a leaf that requires grad), as a function of a free cotangent w, kept
/// differentiable so that Jacobian–vector products can be taken from them.
type Tangent =
    { W: Tensor
      U: Tensor }

/// Builds u = Jᵀw for a fresh w; the graph of Φ is kept.
let tangent (phi: Tensor) (x: Tensor) : Tangent =
    let w = torch.zeros_like(phi).requires_grad_(true)
    let u = (SafeAutograd.grad [| phi |] [| x |] [| w |] true)[0]
    { W = w; U = u }

/// J_k v (shaped like v), exact. With `createGraph` the product stays differentiable in v, X and the field's tensors.
let jvp (t: Tangent) (k: int) (v: Tensor) (createGraph: bool) : Tensor =
    use uk = t.U.select(0L, int64 k)
    use products = uk.mul(v)
    use s = products.sum()
    use seed = torch.ones_like(s)
    use full = (SafeAutograd.grad [| s |] [| t.W |] [| seed |] createGraph)[0]
    full.select(0L, int64 k)

/// J_kᵀ v (shaped like v): one reverse pass through segment k's output.
let vjp (phi: Tensor) (x: Tensor) (k: int) (v: Tensor) : Tensor =
    use phik = phi.select(0L, int64 k)
    use full = (SafeAutograd.grad [| phik |] [| x |] [| v |] false)[0]
    full.select(0L, int64 k)

/// Every J_k in full: shape [N, D, D] for D elements in a state, J[k, i, j] = ∂φ_k[i]/∂X_k[j]. D reverse passes,
/// each giving row i of all N Jacobians.
let jacobians (phi: Tensor) (x: Tensor) : Tensor =
    let n = phi.shape[0]
    let d = phi.numel() / n
    use identity = torch.eye(d, dtype = phi.dtype, device = phi.device)
    let rows =
        Array.init (int d) (fun i ->
            use scope = torch.NewDisposeScope()
            use row = identity.select(0L, int64 i)
            use seedFlat = row.expand([| n; d |])
            use seed = seedFlat.reshape(phi.shape)
            use g = (SafeAutograd.grad [| phi |] [| x |] [| seed |] false)[0]
            g.reshape([| n; d |]).MoveToOuterDisposeScope())
    try torch.stack(rows, 1L)
    finally for r in rows do r.Dispose()

/// J v for a full Jacobian J [D, D] and v of any shape with D elements.
let apply (jacobian: Tensor) (v: Tensor) : Tensor =
    use flat = v.reshape([| -1L; 1L |])
    use product = jacobian.matmul(flat)
    product.reshape(v.shape)
