/// The right-hand side of the adjoint system (Massaroli et al. 2020, Proposition 1; Pontryagin):
///   da/dt = −aᵀ ∂f/∂x − w ∂l/∂x,    dμ/dt = −aᵀ ∂f/∂θ − w ∂l/∂θ,
/// with a(t1) = ∂L/∂x(t1), μ(t1) = 0, integrated from t1 back to t0, where l is the running loss and w the weight the
/// backward pass gives to its integral. Then dL/dx0 = a(t0) and dL/dθ = μ(t0). The products with Jacobians are
/// vector-Jacobian products (Internal.SafeAutograd, which raises where torch.autograd.grad would abort), never
/// Jacobians.
module internal NeuralOde.Core.AdjointSystem

open TorchSharp

type Tensor = torch.Tensor

/// Gradients from autograd of `outputs` (seeded) with respect to [x; tracked]: nulls where nothing flows.
let private autogradProducts (outputs: Tensor[]) (seeds: Tensor[]) (wrt: Tensor[]) =
    // Outputs that do not depend on anything differentiable (a constant field) have no gradient to take.
    let differentiable = Array.zip outputs seeds |> Array.filter (fun (o, _) -> o.requires_grad)
    if differentiable.Length = 0 then Array.create wrt.Length null
    else Internal.SafeAutograd.grad (Array.map fst differentiable) wrt (Array.map snd differentiable) false

let private valid (g: Tensor) = not (isNull g) && not g.IsInvalid

/// The closed-form products at (t, x, a), checked: one per listed tensor, each shaped like it.
let private closedForm (vjp: VectorJacobianProduct) (t: float) (x: Tensor) (a: Tensor) =
    let fx, gx, gTheta =
        match vjp.WithValue with
        | Some together -> let fx, gx, gTheta = together t x a in Some fx, gx, gTheta
        | None -> let gx, gTheta = vjp.Apply t x a in None, gx, gTheta
    let fail (what: string) = raise (System.ArgumentException($"The vector-Jacobian product at t = {t} {what}.", "vectorJacobianProduct"))
    let shapeOf (g: Tensor) = if isNull g then "null" else Internal.TensorOps.shapeText g
    let count = if isNull gTheta then 0 else gTheta.Length
    if isNull gx || gx.shape <> x.shape then fail $"returned aᵀ∂f/∂x of shape {shapeOf gx} for a state of shape {shapeOf x}"
    if count <> vjp.Parameters.Length then fail $"returned {count} parameter product(s) for {vjp.Parameters.Length} listed parameter(s)"
    Array.iteri2 (fun i (g: Tensor) (p: Tensor) ->
        if isNull g || g.shape <> p.shape then fail $"returned product {i} of shape {shapeOf g} for parameter {i} of shape {shapeOf p}") gTheta vjp.Parameters
    match fx with
    | Some v when isNull v || v.shape <> x.shape -> fail $"returned f(t, x) of shape {shapeOf v} for a state of shape {shapeOf x}"
    | _ -> ()
    fx, gx, gTheta

/// f(t, x), the adjoint derivative and the parameter-gradient derivatives at (t, x, a). `parameters` are the
/// tensors the gradients are for; those that do not require grad, or that f and l do not use, get zeros. With
/// closed-form products `vjp`, f's part takes no autograd graph (only the running loss's part does, when there is one).
let derivatives (f: VectorField) (vjp: VectorJacobianProduct option) (loss: IntegralLoss option) (weight: float)
                (parameters: Tensor[]) (t: float) (x: Tensor) (a: Tensor) : Tensor * Tensor * Tensor[] =
    // Everything made here is freed with this scope but the three results. What f or l return may be a tensor they
    // do not own (a constant field returning a captured tensor): that is never disposed here.
    use scope = torch.NewDisposeScope()
    let tracked = parameters |> Array.filter (fun p -> p.requires_grad)
    // The running loss as outputs and seeds for autograd, −w·l (none without one or with weight 0).
    let lossTerm (xr: Tensor) =
        match loss with
        | Some l when weight <> 0.0 ->
            let lx = l t xr
            use w = TorchSharp.Scalar.op_Implicit (-weight)
            [| lx |], [| torch.full_like(lx, w) |]
        | _ -> [||], [||]
    let dx, grads =
        match vjp with
        | Some products ->
            let value, gx, gTheta = (use _ = torch.no_grad() in closedForm products t x a)
            let fx = match value with Some v -> v | None -> (use _ = torch.no_grad() in f t (x.detach()))
            // The running loss's products −w ∂l/∂[x; θ] by autograd (nulls without one).
            let fromLoss =
                use _ = torch.enable_grad()
                let xr = x.detach().requires_grad_(true)
                let outputs, seeds = lossTerm xr
                autogradProducts outputs seeds (Array.append [| xr |] tracked)
            let plus (g: Tensor) (l: Tensor) = if valid l then g.neg() + l else g.neg()
            let byField (p: Tensor) = products.Parameters |> Array.tryFindIndex (fun q -> obj.ReferenceEquals(q, p))
            let thetaGrads =
                tracked |> Array.mapi (fun i p ->
                    match byField p with
                    | Some k -> plus gTheta[k] fromLoss[i + 1]
                    | None -> fromLoss[i + 1])
            fx.detach(), Array.append [| plus gx fromLoss[0] |] thetaGrads
        | None ->
            use _ = torch.enable_grad()
            let xr = x.detach().requires_grad_(true)
            let fx = f t xr
            let outputs, seeds = lossTerm xr
            fx.detach(), autogradProducts (Array.append [| fx |] outputs) (Array.append [| a.neg() |] seeds) (Array.append [| xr |] tracked)
    let da = if valid grads[0] then grads[0] else torch.zeros_like(x)
    let byTracked = Array.zip tracked grads[1..]
    let dTheta =
        parameters |> Array.map (fun p ->
            match byTracked |> Array.tryFind (fun (q, _) -> obj.ReferenceEquals(q, p)) with
            | Some(_, g) when valid g -> g
            | _ -> torch.zeros_like(p))
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
