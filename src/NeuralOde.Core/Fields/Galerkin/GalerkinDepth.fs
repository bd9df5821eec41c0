/// torchdyn's trainable dilation and shift of the depth for Galerkin layers (torchdyn/nn/galerkin.py, GalLayer):
/// θ(s) = α ψ(s'), s' = d·s + h, d and h learnable scalars starting at 1 and 0, so training can stretch and slide
/// the basis along the depth axis.
///
/// Our bases are closed forms on floats, not tensor functions, so ψ(s') is built as a tensor that has the right
/// value and the right first derivative in d and h: ψ(s') + ψ'(s')·(s'_t − stop(s'_t)), where s'_t = d·s + h is
/// a tensor in the autograd graph and stop(·) detaches it. Its value is ψ(s') exactly (the bracket is zero) and its
/// derivative is ψ'(s')·∂s'/∂(d, h) = (ψ'(s')·s, ψ'(s')) exactly, which is all that gradients (autograd and every
/// adjoint's vector-Jacobian product) use. It is exact to first order only: a second derivative in d or h (a Hessian
/// of the loss in them) misses the ψ''(s')·(∂s')² term. Derivatives in x and α are unaffected.
module internal NeuralOde.Core.GalerkinDepth

open TorchSharp

/// The trainable dilation d (1) and shift h (0), each of shape [1], when asked for.
let parameters (dilation: bool) (shift: bool) (dtype: torch.ScalarType) : Modules.Parameter option * Modules.Parameter option =
    (if dilation then Some(new Modules.Parameter(torch.ones([| 1L |], dtype = dtype))) else None),
    (if shift then Some(new Modules.Parameter(torch.zeros([| 1L |], dtype = dtype))) else None)

/// ψ at depth s as a tensor [m] with the dtype and device of `like`: ψ(s) when neither d nor h is trainable (the
/// depth checked against the basis' domain); else ψ(d·s + h) with the first derivatives in d and h (above), the
/// transformed depth allowed outside [0, S] only for bases that extrapolate (Basis.transformedAt).
let psi (basis: Basis) (dilation: Modules.Parameter option) (shift: Modules.Parameter option) (s: float) (like: torch.Tensor) : torch.Tensor =
    match dilation, shift with
    | None, None -> torch.tensor(Basis.valuesAt basis s, dtype = like.dtype, device = like.device)
    | _ ->
        let d = match dilation with Some p -> p.ToDouble() | None -> 1.0
        let h = match shift with Some p -> p.ToDouble() | None -> 0.0
        let values, derivatives = Basis.transformedAt basis d h s
        use v = torch.tensor(values, dtype = like.dtype, device = like.device)
        use dv = torch.tensor(derivatives, dtype = like.dtype, device = like.device)
        use transformed =
            match dilation, shift with
            // TensorOps' helpers, not `+` and tensor–number operators: those pass TorchSharp a temporary Scalar the
            // finaliser may free while libtorch reads it (Internal/TensorOps.fs).
            | Some d, Some h -> (use ds = Internal.TensorOps.scale d s in Internal.TensorOps.plus ds h)
            | Some d, None -> Internal.TensorOps.scale d s
            | None, Some h -> Internal.TensorOps.addConstant h s
            | None, None -> invalidOp "unreachable"
        use frozen = transformed.detach()
        use offset = transformed - frozen
        use slope = dv * offset
        Internal.TensorOps.plus v slope
