/// One sweep of multiple shooting: new boundary states B' from the current B and its flows Φ_k = φ_k(b_k). Every
/// sweep starts from b'_0 = z0 and runs over the segments in order:
/// b'_{k+1} = Φ_k + M_k (b'_k − b_k), with M_k = 0 (Zero), J_k (Direct, Forward) or J_kᵀ (Backward).
module internal NeuralOde.Core.NewtonSweep

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// The recursion b'_{k+1} = Φ_k + M_k (b'_k − b_k) from b'_0 = z0, where `correction k δ` is M_k δ. Unless
/// `correctFirst`, the first correction is skipped: its δ = z0 − b_0 is zero (b_0 is z0); a differentiable sweep
/// keeps it, for its derivative J_0 dz0. Returns B' stacked, [N + 1, ...].
let recursion (correctFirst: bool) (z0: Tensor) (b: Tensor) (phi: Tensor) (correction: int -> Tensor -> Tensor) : Tensor =
    let n = int phi.shape[0]
    let states = ResizeArray<Tensor>([ z0.alias() ])
    try
        for k in 0 .. n - 1 do
            use scope = torch.NewDisposeScope()
            let phik = phi.select(0L, int64 k)
            if k = 0 && not correctFirst then states.Add(phik.MoveToOuterDisposeScope())
            else
                use bk = b.select(0L, int64 k)
                use delta = states[k].sub(bk)
                use m = correction k delta
                states.Add((TensorOps.plus phik m).MoveToOuterDisposeScope())
        torch.stack(states, 0L)
    finally
        for s in states do s.Dispose()

/// The zeroth-order sweep b'_{k+1} = Φ_k, every segment at once.
let zero (z0: Tensor) (phi: Tensor) : Tensor =
    use first = z0.unsqueeze(0L)
    torch.cat([| first; phi |], 0L)

/// One sweep of `variant` at B with Φ = φ(X), X the leaf of B's first N states that Φ was computed from (it must
/// require grad, except for Zero). Without gradients: the result is detached.
let sweep (variant: ShootingVariant) (z0: Tensor) (b: Tensor) (x: Tensor) (phi: Tensor) : Tensor =
    match variant with
    | ShootingVariant.Zero -> zero z0 phi
    | ShootingVariant.Forward ->
        let t = Linearisation.tangent phi x
        try recursion false z0 b phi (fun k delta -> Linearisation.jvp t k delta false)
        finally
            t.W.Dispose()
            t.U.Dispose()
    | ShootingVariant.Backward -> recursion false z0 b phi (fun k delta -> Linearisation.vjp phi x k delta)
    | ShootingVariant.Direct ->
        use jacobians = Linearisation.jacobians phi x
        recursion false z0 b phi (fun k delta ->
            use jk = jacobians.select(0L, int64 k)
            Linearisation.apply jk delta)
