/// Running losses that regularise the dynamics of a Neural ODE (Finlay et al. 2020, "How to train your neural ODE:
/// the world of Jacobian and kinetic regularization", eq. 3–4 and §4): penalising the kinetic energy ‖f‖² and the
/// Jacobian's Frobenius norm ‖∂f/∂z‖²_F along the trajectory favours straight, slowly varying flows, which adaptive
/// solvers integrate in fewer steps. Each is an IntegralLoss (a 0-dim tensor, summed over the batch): give it to
/// OdeProblem.withIntegralLoss and its integral is returned with the solution and differentiated by every
/// sensitivity (the adjoints handle a running loss that depends on θ: AdjointSystem.derivatives). Weight it (and
/// divide by the batch size for a mean) when adding it to the loss. Each loss evaluates f once more per evaluation,
/// and raises ArgumentException ("f") when f's value does not have the state's shape.
module NeuralOde.Core.Regularisers

open TorchSharp

/// The kinetic energy l(t, z) = Σ_batch ‖f(t, z)‖² (Finlay et al. 2020, eq. 3; the sum over every element of
/// f(t, z), so over the batch too); its integral ∫ ‖f‖² dt is the transport cost of the flow.
let kineticEnergy (f: VectorField) : IntegralLoss =
    if isNull (box f) then raise (System.ArgumentNullException("f"))
    fun t z ->
        // What f makes is freed here; only the sum is kept. What f returns but does not own is left alone.
        use scope = torch.NewDisposeScope()
        let fz = f t z
        FieldShape.check "The kinetic energy" "f" t z fz
        fz.square().sum().MoveToOuterDisposeScope()

/// The Jacobian penalty l(t, z) = Σ_batch ‖εᵀ ∂f/∂z‖² with the probes ε [N, ...] given (ε of the state's shape,
/// E[ε εᵀ] = I per sample): an unbiased estimate of Σ_batch ‖∂f/∂z‖²_F (Finlay et al. 2020, eq. 4; Hutchinson), by
/// one vector–Jacobian product with create_graph, so it is differentiable. f must map each sample by itself (no
/// mixing across the batch). The caller owns ε and keeps it alive until the backward pass is done.
let jacobianFrobeniusWith (f: VectorField) (epsilon: torch.Tensor) : IntegralLoss =
    if isNull (box f) then raise (System.ArgumentNullException("f"))
    if isNull epsilon then raise (System.ArgumentNullException("epsilon"))
    fun t z ->
        if epsilon.shape <> z.shape then
            raise (System.ArgumentException($"The probes must have the state's shape {Internal.TensorOps.shapeText z}; got {Internal.TensorOps.shapeText epsilon}.", "epsilon"))
        let createGraph = torch.is_grad_enabled()
        use scope = torch.NewDisposeScope()
        use _ = torch.enable_grad()
        let zr = if z.requires_grad then z else z.detach().requires_grad_(true)
        let fz = f t zr
        FieldShape.check "The Jacobian penalty" "f" t z fz
        let penalty =
            if not fz.requires_grad then torch.zeros([||], dtype = z.dtype, device = z.device)
            else
                let probe = epsilon.to_type(fz.dtype)
                let g = (Internal.SafeAutograd.grad [| fz |] [| zr |] [| probe |] createGraph)[0]
                if isNull g || g.IsInvalid then torch.zeros([||], dtype = z.dtype, device = z.device)
                else g.square().sum()
        (if createGraph then penalty else penalty.detach()).MoveToOuterDisposeScope()

/// The Jacobian penalty Σ_batch ‖εᵀ ∂f/∂z‖² with Hutchinson probes of the kind `noise` (Finlay et al. 2020, eq. 4).
/// The probes are fixed for the life of the returned loss: a seed is drawn from `generator` (the global generator
/// when null) when it is made, and ε is redrawn from that seed, with the state's shape, at each evaluation — so
/// every evaluation of one solve, an adjoint's backward solve included, sees the same ε and no tensor outlives the
/// evaluation. Make a new one for each solve (each training iteration) to draw fresh probes.
let jacobianFrobenius (f: VectorField) (noise: Noise) (generator: torch.Generator) : IntegralLoss =
    if isNull (box f) then raise (System.ArgumentNullException("f"))
    let seed = Trace.drawSeed generator
    fun t z ->
        use epsilon = Trace.noise noise seed z.shape z.dtype z.device
        jacobianFrobeniusWith f epsilon t z

/// The regulariser of a block (NeuralOdeModel.Regulariser): given the block's own field f — told the depth and the
/// data like every evaluation of the solve — the running loss kineticWeight·Σ‖f‖² + jacobianWeight·Σ‖εᵀ∂f/∂z‖².
/// The block builds it anew for each solve, so the Jacobian probes are fresh for every training iteration and fixed
/// within one solve (its adjoint's backward included).
let weighted (kineticWeight: float) (jacobianWeight: float) : VectorField -> IntegralLoss =
    for name, w in [ "kineticEnergy", kineticWeight; "jacobianFrobenius", jacobianWeight ] do
        if System.Double.IsNaN w || System.Double.IsInfinity w || w < 0.0 then
            raise (System.ArgumentOutOfRangeException(name, w, $"The weight {name} must be a finite number ≥ 0; got {w}."))
    fun f ->
        let kinetic = if kineticWeight > 0.0 then Some(kineticEnergy f) else None
        let jacobian = if jacobianWeight > 0.0 then Some(jacobianFrobenius f Rademacher null) else None
        fun t z ->
            use scope = torch.NewDisposeScope()
            let terms =
                [ match kinetic with Some k -> yield Internal.TensorOps.scale (k t z) kineticWeight | None -> ()
                  match jacobian with Some j -> yield Internal.TensorOps.scale (j t z) jacobianWeight | None -> () ]
            let total =
                match terms with
                | [] -> torch.zeros([||], dtype = z.dtype, device = z.device)
                | first :: rest -> rest |> List.fold Internal.TensorOps.plus first
            total.MoveToOuterDisposeScope()
