/// The right-hand side of the adjoint system (Massaroli et al. 2020, Proposition 1; Pontryagin):
///   da/dt = −aᵀ ∂f/∂x − w ∂l/∂x,    dμ/dt = −aᵀ ∂f/∂θ − w ∂l/∂θ,
/// with a(t1) = ∂L/∂x(t1), μ(t1) = 0, integrated from t1 back to t0, where l is the running loss and w the weight the
/// backward pass gives to its integral. Then dL/dx0 = a(t0) and dL/dθ = μ(t0). The products with Jacobians are
/// vector-Jacobian products (Internal.SafeAutograd, which raises where torch.autograd.grad would abort), never
/// Jacobians.
module internal NeuralOde.Core.AdjointSystem

open TorchSharp

type Tensor = torch.Tensor

/// f(t, x), the adjoint derivative and the parameter-gradient derivatives at (t, x, a). `parameters` are the
/// tensors the gradients are for; those that do not require grad, or that f and l do not use, get zeros.
let derivatives (f: VectorField) (loss: IntegralLoss option) (weight: float) (parameters: Tensor[])
                (t: float) (x: Tensor) (a: Tensor) : Tensor * Tensor * Tensor[] =
    // Everything made here is freed with this scope but the three results. What f or l return may be a tensor they
    // do not own (a constant field returning a captured tensor): that is never disposed here.
    use scope = torch.NewDisposeScope()
    use _ = torch.enable_grad()
    let xr = x.detach().requires_grad_(true)
    let fx = f t xr
    let tracked = parameters |> Array.filter (fun p -> p.requires_grad)
    let outputs, seeds =
        match loss with
        | Some l when weight <> 0.0 ->
            let lx = l t xr
            use w = TorchSharp.Scalar.op_Implicit (-weight)
            [| fx; lx |], [| a.neg(); torch.full_like(lx, w) |]
        | _ -> [| fx |], [| a.neg() |]
    // Outputs that do not depend on anything differentiable (a constant field) have no gradient to take.
    let differentiable = Array.zip outputs seeds |> Array.filter (fun (o, _) -> o.requires_grad)
    let wrt = Array.append [| xr |] tracked
    let grads =
        if differentiable.Length = 0 then Array.create wrt.Length null
        else Internal.SafeAutograd.grad (Array.map fst differentiable) wrt (Array.map snd differentiable) false
    let valid (g: Tensor) = not (isNull g) && not g.IsInvalid
    let da = if valid grads[0] then grads[0] else torch.zeros_like(x)
    let byTracked = Array.zip tracked [| for i in 1 .. tracked.Length -> grads[i] |]
    let dTheta =
        parameters |> Array.map (fun p ->
            match byTracked |> Array.tryFind (fun (q, _) -> obj.ReferenceEquals(q, p)) with
            | Some(_, g) when valid g -> g
            | _ -> torch.zeros_like(p))
    let dx = fx.detach()
    dx.MoveToOuterDisposeScope(), da.MoveToOuterDisposeScope(), dTheta |> Array.map (fun g -> g.MoveToOuterDisposeScope())

/// aᵀ f(t, x) + w·l(t, x) as a host number: the derivative of the loss with respect to an end time.
let endTimeDerivative (f: VectorField) (loss: IntegralLoss option) (weight: float) (t: float) (x: Tensor) (a: Tensor) =
    // Only a number comes out: what f and l make is freed with this scope (and what they return but do not own,
    // a captured tensor, is left alone).
    use _ = torch.NewDisposeScope()
    use _ = torch.no_grad()
    OdeSolveException.Calling(t, fun () ->
        let fx = f t x
        use dot = (a * fx).sum()
        let running =
            match loss with
            | Some l when weight <> 0.0 -> weight * (l t x).ToDouble()
            | _ -> 0.0
        dot.ToDouble() + running)
