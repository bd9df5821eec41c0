namespace NeuralOde.Core

open TorchSharp

/// The distribution of the probe vectors ε of Hutchinson's estimator; both have E[ε εᵀ] = I, so E[εᵀ J ε] = tr J
/// (Hutchinson 1990; Grathwohl et al. 2019, FFJORD, §3.1).
type Noise =
    /// ±1 with probability ½ each: variance Σ_{i≠j} (J_ij² + J_ij J_ji) (2 Σ_{i≠j} J_ij² for symmetric J), never more
    /// than the Gaussian's (Hutchinson 1990).
    | Rademacher
    /// Standard normal entries: variance ‖J‖_F² + Σ_ij J_ij J_ji (2 ‖J‖_F² for symmetric J).
    | Gaussian

/// How the divergence tr(∂f/∂z) of a continuous normalizing flow is computed (Chen et al. 2018, Theorem 1;
/// Grathwohl et al. 2019, eq. 6).
type TraceEstimator =
    /// d vector–Jacobian products, one per coordinate: the exact trace. Cost grows with the dimension d; for small d.
    /// A field with a closed-form trace (IExactTrace: a symbolic field) gives it instead, at about one forward's cost.
    | Exact
    /// Hutchinson's unbiased estimate εᵀ (∂f/∂z) ε from one vector–Jacobian product (FFJORD), with ε drawn once per
    /// solve and held fixed while it runs.
    | Hutchinson of Noise

/// A field that gives its value and the exact trace of its Jacobian together, in closed form (a symbolic field: see
/// Symbolic/JacobianTrace.fs). A flow whose field is one uses it for the exact trace instead of d autograd passes.
type IExactTrace =
    /// f(s, z) [N, d] and tr(∂f/∂z) per sample [N] at depth s, with data-controlled inputs bound to `data` (null for
    /// none); differentiable when grad is enabled.
    abstract ValueAndTrace: depth: float * state: torch.Tensor * data: torch.Tensor -> torch.Tensor * torch.Tensor

/// Trace estimators of the Jacobian ∂f/∂z of a batched field output f [N, d] with respect to z [N, d], one per
/// sample (each row of f depends on the same row of z only).
module Trace =
    let private checkBatched (name: string) (z: torch.Tensor) =
        if z.dim() <> 2L then
            raise (System.ArgumentException($"{name} must be a batch of vectors [N, d]; got shape {Internal.TensorOps.shapeText z}. Flatten the features (x.flatten(1)) before the flow.", name))

    /// tr(∂f/∂z) per sample [N], by d vector–Jacobian products eᵢᵀ ∂f/∂z (torch.autograd.grad with one-hot seeds).
    /// `fz` must have been computed from `z` with grad enabled; `createGraph` keeps the result differentiable (with
    /// respect to z and whatever f depends on), as training needs.
    let exact (fz: torch.Tensor) (z: torch.Tensor) (createGraph: bool) : torch.Tensor =
        checkBatched "z" z
        use scope = torch.NewDisposeScope()
        let d = z.shape[1]
        let mutable total = torch.zeros([| z.shape[0] |], dtype = z.dtype, device = z.device)
        if fz.requires_grad then
            use one = Scalar.op_Implicit 1.0
            for i in 0L .. d - 1L do
                let seed = torch.zeros_like(fz)
                (seed.select(1L, i)).fill_(one) |> ignore
                // SafeAutograd: torch.autograd.grad would abort the process on a libtorch error.
                let g = (Internal.SafeAutograd.grad [| fz |] [| z |] [| seed |] createGraph)[0]
                if not (isNull g) && not g.IsInvalid then total <- Internal.TensorOps.plus total (g.select(1L, i))
        total.MoveToOuterDisposeScope()

    /// Hutchinson's estimate εᵀ (∂f/∂z) ε per sample [N] (Grathwohl et al. 2019, eq. 7): one vector–Jacobian product
    /// εᵀ ∂f/∂z, then its product with ε summed over the features. Unbiased when E[ε εᵀ] = I.
    let hutchinson (fz: torch.Tensor) (z: torch.Tensor) (epsilon: torch.Tensor) (createGraph: bool) : torch.Tensor =
        checkBatched "z" z
        use scope = torch.NewDisposeScope()
        let estimate =
            if fz.requires_grad then
                let g = (Internal.SafeAutograd.grad [| fz |] [| z |] [| epsilon |] createGraph)[0]
                if isNull g || g.IsInvalid then torch.zeros([| z.shape[0] |], dtype = z.dtype, device = z.device)
                else (g * epsilon).sum(1L)
            else torch.zeros([| z.shape[0] |], dtype = z.dtype, device = z.device)
        estimate.MoveToOuterDisposeScope()

    /// A seed for the noise of one solve, from `generator` (the global generator when null): the probe vectors are
    /// redrawn from it at every evaluation, so each evaluation of the solve (an adjoint's backward solve included)
    /// sees the same ε and no tensor has to outlive the solve.
    let drawSeed (generator: torch.Generator) : uint64 =
        use seed = torch.randint(0L, System.Int64.MaxValue, [| 1L |], dtype = torch.int64, generator = generator)
        uint64 (seed.ToInt64())

    /// Probe vectors ε of `shape`, `dtype` and `device`, drawn on the host from a generator seeded with `seed`.
    let noise (kind: Noise) (seed: uint64) (shape: int64[]) (dtype: torch.ScalarType) (device: torch.Device) : torch.Tensor =
        use scope = torch.NewDisposeScope()
        use g = new torch.Generator(seed)
        let draw =
            match kind with
            | Gaussian -> torch.randn(shape, dtype = dtype, generator = g)
            | Rademacher ->
                let u = torch.rand(shape, dtype = dtype, generator = g)
                use half = Scalar.op_Implicit 0.5
                Internal.TensorOps.addConstant (Internal.TensorOps.scale (u.lt(half).to_type(dtype)) 2.0) -1.0
        draw.``to``(device).MoveToOuterDisposeScope()

    /// Evaluates f at (t, z) with grad enabled and returns f(t, z) and the trace of ∂f/∂z per sample [N] by
    /// `estimator` (the probes ε drawn from `seed` for Hutchinson). When grad was off at the call or z does not require
    /// grad, a detached copy that does is differentiated instead (no gradient then flows to z, which needed none; and
    /// z's own graph, built outside grad mode — an adjoint's forward solve from an x that requires grad — is not
    /// differentiated through). The results are
    /// differentiable when grad was enabled at the call (training, an adjoint's vector–Jacobian products), and
    /// detached otherwise.
    let evaluate (estimator: TraceEstimator) (seed: uint64) (f: VectorField) (t: float) (z: torch.Tensor) : torch.Tensor * torch.Tensor =
        checkBatched "z" z
        let createGraph = torch.is_grad_enabled()
        use scope = torch.NewDisposeScope()
        use _ = torch.enable_grad()
        let zr = if createGraph && z.requires_grad then z else z.detach().requires_grad_(true)
        let fz = f t zr
        if isNull fz || fz.shape <> zr.shape then
            let got = if isNull fz then "null" else Internal.TensorOps.shapeText fz
            raise (System.ArgumentException($"The vector field must return a tensor of its input's shape {Internal.TensorOps.shapeText zr} at t = {t}; it returned {got}.", "field"))
        let tr =
            match estimator with
            | Exact -> exact fz zr createGraph
            | Hutchinson kind ->
                let epsilon = noise kind seed zr.shape zr.dtype zr.device
                hutchinson fz zr epsilon createGraph
        let fz, tr = if createGraph then fz.alias(), tr else fz.detach(), tr.detach()
        fz.MoveToOuterDisposeScope(), tr.MoveToOuterDisposeScope()
