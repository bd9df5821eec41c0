/// The gradients of depth-variant parameters straight from the paper's theorems (Massaroli et al. 2020):
/// - Theorem 1: the functional gradient s ↦ δℓ/δθ(s) = a(s)ᵀ ∂f_{θ(s)}/∂θ(s), evaluated on any grid of depths;
/// - Corollary 1: for θ(s) = Σ_j α_j ψ_j(s), dℓ/dα_j = ∫_0^S δℓ/δθ(s) ψ_j(s) ds, here by Gauss–Legendre
///   quadrature (MathNet.Numerics) of the Theorem 1 gradient. (The adjoint methods compute the same dℓ/dα during
///   their backward solve, since their vector-Jacobian product with respect to α is exactly this integrand.)
/// The adjoint a(s) is integrated backward against the recorded forward solution, as the interpolated adjoint does,
/// segment by segment between the requested depths.
module NeuralOde.Core.InfiniteDimensionalGradient

open TorchSharp
open MathNet.Numerics.Integration
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// Checks the arguments every gradient routine shares: nothing null or disposed, ∂L/∂x(S) shaped as x0.
let private checkArguments (weights: unit -> Tensor) (x0: Tensor) (terminalGradient: Tensor) =
    if isNull (box weights) then raise (System.ArgumentNullException("weights"))
    if isNull x0 then raise (System.ArgumentNullException("x0"))
    if isNull terminalGradient then raise (System.ArgumentNullException("terminalGradient"))
    if x0.IsInvalid then raise (System.ObjectDisposedException("x0", "x0 has been disposed."))
    if terminalGradient.IsInvalid then raise (System.ObjectDisposedException("terminalGradient", "terminalGradient has been disposed."))
    if terminalGradient.shape <> x0.shape then
        raise (System.ArgumentException($"terminalGradient (∂L/∂x(S)) must have x0's shape {TensorOps.shapeText x0}; got {TensorOps.shapeText terminalGradient}.", "terminalGradient"))
    if terminalGradient.dtype <> x0.dtype || terminalGradient.device_type <> x0.device_type then
        raise (System.ArgumentException($"terminalGradient must have x0's dtype and device ({x0.dtype} on {x0.device}); got {terminalGradient.dtype} on {terminalGradient.device}.", "terminalGradient"))

/// As `along` (below), and also returns the adjoint a at the start of the span (to carry the adjoint across pieces of a
/// piecewise-defined field, Corollary 2).
let alongWithStartAdjoint (field: VectorField) (weights: unit -> Tensor) (x0: Tensor) (span: float * float) (terminalGradient: Tensor)
                          (loss: IntegralLoss option) (depths: float[]) (solver: ButcherTableau) (control: StepControl) : Tensor * Tensor =
    let s0, s1 = span
    if isNull (box field) then raise (System.ArgumentNullException("field"))
    checkArguments weights x0 terminalGradient
    Guard.timeGrid "span" [| s0; s1 |] |> ignore
    if isNull depths then raise (System.ArgumentNullException("depths"))
    if depths.Length = 0 then raise (System.ArgumentException("depths is empty: give at least one depth at which to evaluate the gradient.", "depths"))
    // Its adjoint field is a vector–Jacobian product without a graph of its own: an implicit method would see a zero
    // Jacobian (a Newton iteration that fails, a Rosenbrock method silently of the wrong order).
    if solver.IsImplicit then
        raise (System.ArgumentException($"The infinite-dimensional gradient solves its adjoint with explicit methods; '{solver.Name}' is implicit. Use dopri5, tsit5 or a fixed-step method.", "solver"))
    let lo, hi = min s0 s1, max s0 s1
    depths |> Array.iteri (fun i s ->
        if System.Double.IsNaN s || s < lo || s > hi then
            raise (System.ArgumentOutOfRangeException("depths", s, $"depths[{i}] = {s} lies outside the span [{lo}, {hi}]; the gradient is only defined inside it.")))
    let direction = if s1 > s0 then 1.0 else -1.0
    use _ = torch.no_grad()
    // Every requested depth becomes a segment end of both solves, so x(s) and a(s) there are step values, not
    // interpolated ones (the interpolants are an order less accurate than the steps).
    let grid =
        Array.concat [ [| s0 |]; depths |> Array.filter (fun s -> s <> s0 && s <> s1); [| s1 |] ]
        |> Array.distinct |> Array.sortBy (fun s -> direction * s)
    let segments = Array.zeroCreate<DenseTrajectory> (grid.Length - 1)
    let states = Array.zeroCreate<Tensor> grid.Length
    let adjoints = Array.zeroCreate<Tensor> grid.Length
    try
        states[0] <- x0.alias()
        for k in 0 .. grid.Length - 2 do
            let solution, recorded =
                Integrate.solveWith { Integrate.defaultSettings with Record = true }
                    (OdeProblem.create field states[k] [| grid[k]; grid[k + 1] |]) solver control
            states[k + 1] <- solution.States[1L]
            (solution :> System.IDisposable).Dispose()
            segments[k] <- recorded.Value
        adjoints[grid.Length - 1] <- terminalGradient.alias()
        for k in grid.Length - 2 .. -1 .. 0 do
            let trajectory = segments[k]
            let adjointField: VectorField =
                fun s a ->
                    use x = trajectory.EvaluateWithin s
                    let _, da, _ = AdjointSystem.derivatives field None loss 1.0 [||] s x a
                    da
            use solution = Integrate.solve (OdeProblem.create adjointField adjoints[k + 1] [| grid[k + 1]; grid[k] |]) solver control
            adjoints[k] <- solution.States[1L]
        let rows =
            depths |> Array.map (fun s ->
                // One scope per depth: the evaluation's intermediates (θ(s) itself among them: `weights ()` is
                // valid until its scope ends) are freed here, the row is kept.
                use scope = torch.NewDisposeScope()
                let i = Array.findIndex ((=) s) grid
                use _ = torch.enable_grad()
                use xr = states[i].detach().requires_grad_(true)
                let fx = field s xr
                let theta = weights ()
                let g = Internal.SafeAutograd.grad [| fx |] [| theta |] [| adjoints[i] |] false
                let row = if isNull g[0] || g[0].IsInvalid then torch.zeros_like(theta) else g[0].detach()
                row.MoveToOuterDisposeScope())
        let result = torch.stack(rows, 0L)
        for r in rows do r.Dispose()
        result, adjoints[0].clone()
    finally
        for t in Seq.append states adjoints do if not (isNull t) then t.Dispose()
        for seg in segments do if not (obj.ReferenceEquals(seg, null)) then (seg :> System.IDisposable).Dispose()

/// δℓ/δθ(s) at each of `depths` (inside the span), stacked [depths.Length; n_θ]. `field` evaluates f(s, x) and
/// `weights ()` returns the θ(s) tensor the last evaluation used (e.g. GalLinear.LastWeights). The loss is
/// ℓ = L(x(S)) + ∫ l with ∂L/∂x(S) = `terminalGradient`.
let along field weights x0 span terminalGradient loss depths solver control : Tensor =
    let g, a0 = alongWithStartAdjoint field weights x0 span terminalGradient loss depths solver control
    a0.Dispose()
    g

/// Gauss–Legendre quadrature of `integrand nodes weights`, doubling the nodes from 32 until two successive results
/// agree to `tolerance` (relative); fails past 1024 nodes with the last change.
let converged (tolerance: float) (what: string) (integrand: int -> Tensor) : Tensor =
    Guard.positiveFinite "tolerance" tolerance
    let rec refine (nodes: int) (previous: Tensor) =
        let next = integrand (2 * nodes)
        use difference = next - previous
        use diff = difference.norm()
        use scale = next.norm()
        let change = diff.ToDouble() / max (scale.ToDouble()) 1e-300
        previous.Dispose()
        if change <= tolerance then next
        elif 2 * nodes >= 1024 then
            next.Dispose()
            raise (System.InvalidOperationException($"The quadrature of {what} did not converge: 512 and 1024 Gauss–Legendre nodes differ by {change:E2} (relative), more than the tolerance {tolerance:E2}. Loosen the tolerance or check the vector field for discontinuities in depth."))
        else refine (2 * nodes) next
    refine 32 (integrand 32)

/// Host values (quadrature weights, basis values) as a tensor of `shape` with the dtype and device of `like`.
let private onDeviceOf (like: Tensor) (values: float[]) (shape: int64[]) : Tensor =
    use flat = torch.tensor(values, dtype = like.dtype, device = like.device)
    flat.reshape(shape)

/// dℓ/dα for θ(s) = α ψ(s) (α of shape [n_θ, m]) by Gauss–Legendre quadrature with `nodes` points of the
/// Theorem 1 gradient: Σ_i w_i δℓ/δθ(s_i) ψ(s_i)ᵀ.
let spectral (basis: Basis) (nodes: int) (field: VectorField) (weights: unit -> Tensor) (x0: Tensor) (terminalGradient: Tensor)
             (loss: IntegralLoss option) (solver: ButcherTableau) (control: StepControl) : Tensor =
    if obj.ReferenceEquals(basis, null) then raise (System.ArgumentNullException("basis"))
    let rule = GaussLegendreRule(0.0, basis.Domain, nodes)
    use g = along field weights x0 (0.0, basis.Domain) terminalGradient loss rule.Abscissas solver control
    use psi = onDeviceOf g (Array.concat [| for s in rule.Abscissas -> basis.Values s |]) [| int64 nodes; int64 basis.Terms |]
    use w = onDeviceOf g rule.Weights [| int64 nodes; 1L |]
    use weighted = g * w
    use transposed = weighted.t()
    transposed.mm(psi)

/// dℓ/dα by `spectral`, doubling the number of Gauss–Legendre nodes from 32 until two successive results agree to
/// `tolerance` (relative, Euclidean); fails with the last change if 1024 nodes do not get there. The integrand can
/// vary sharply where a saturating activation switches, so a fixed number of nodes is not safe.
let spectralConverged (basis: Basis) (tolerance: float) (field: VectorField) (weights: unit -> Tensor) (x0: Tensor)
                      (terminalGradient: Tensor) (loss: IntegralLoss option) (solver: ButcherTableau) (control: StepControl) : Tensor =
    converged tolerance "the spectral gradient" (fun nodes -> spectral basis nodes field weights x0 terminalGradient loss solver control)

/// The gradients of a Galerkin layer's trainable dilation d and shift h (θ(s) = α ψ(s'), s' = d·s + h: GalLinear and
/// GalConv2d built with them) from the Theorem 1 gradient by the chain rule, ∂θ(s)/∂d = α ψ'(s') s and
/// ∂θ(s)/∂h = α ψ'(s'): dℓ/dd = ∫_0^S ⟨δℓ/δθ(s), α ψ'(s')⟩ s ds and dℓ/dh = ∫_0^S ⟨δℓ/δθ(s), α ψ'(s')⟩ ds over
/// the basis' domain [0, S], by Gauss–Legendre quadrature with nodes doubled until converged to `tolerance` (as
/// spectralConverged). `coefficients` is α, [n_θ, m]; `dilation` and `shift` their current values. Returns [2]:
/// dℓ/dd, dℓ/dh (for a layer that trains only one of them, read that entry).
let dilationShiftConverged (basis: Basis) (coefficients: Tensor) (dilation: float) (shift: float) (tolerance: float)
                           (field: VectorField) (weights: unit -> Tensor) (x0: Tensor) (terminalGradient: Tensor)
                           (loss: IntegralLoss option) (solver: ButcherTableau) (control: StepControl) : Tensor =
    if obj.ReferenceEquals(basis, null) then raise (System.ArgumentNullException("basis"))
    if isNull coefficients then raise (System.ArgumentNullException("coefficients"))
    if coefficients.dim() <> 2L || coefficients.shape[1] <> int64 basis.Terms then
        raise (System.ArgumentException($"coefficients (α) must be [n_θ, {basis.Terms}] for the {basis} basis; got {TensorOps.shapeText coefficients}.", "coefficients"))
    Guard.finite "dilation" dilation
    Guard.finite "shift" shift
    use alpha = coefficients.detach()
    let integrate (nodes: int) =
        let rule = GaussLegendreRule(0.0, basis.Domain, nodes)
        use g = along field weights x0 (0.0, basis.Domain) terminalGradient loss rule.Abscissas solver control
        let slopes = Array.concat [| for s in rule.Abscissas -> snd (Basis.transformedAt basis dilation shift s) |]
        use psiSlopes = onDeviceOf g slopes [| int64 nodes; int64 basis.Terms |]
        use alphaT = alpha.t().``to``(g.dtype, g.device)
        use thetaSlopes = psiSlopes.mm(alphaT)              // α ψ'(s'_i), [nodes, n_θ]
        use products = g * thetaSlopes
        use inner = products.sum(1L)                        // ⟨δℓ/δθ(s_i), α ψ'(s'_i)⟩
        use w = onDeviceOf g rule.Weights [| int64 nodes |]
        use depths = onDeviceOf g rule.Abscissas [| int64 nodes |]
        use weighted = inner * w
        use byDilation = weighted * depths
        use dd = byDilation.sum()
        use dh = weighted.sum()
        torch.stack([| dd; dh |], 0L)
    converged tolerance "the dilation and shift gradient" integrate

/// Corollary 2: for piecewise-constant θ (θ_i on [s_i, s_{i+1}]), dℓ/dθ_i = ∫_{s_i}^{s_{i+1}} δℓ/δθ(s) ds, each by
/// converged Gauss–Legendre quadrature of the Theorem 1 gradient, the adjoint carried backward across the
/// partition points. `fieldFor i` is the field of interval i; `weights ()` returns the θ_i its last evaluation used.
/// Returns [p, n_θ].
let stacked (fieldFor: int -> VectorField) (weights: unit -> Tensor) (partition: float[]) (x0: Tensor)
            (terminalGradient: Tensor) (loss: IntegralLoss option) (tolerance: float) (solver: ButcherTableau) (control: StepControl) : Tensor =
    Guard.timeGrid "partition" partition |> ignore
    if isNull (box fieldFor) then raise (System.ArgumentNullException("fieldFor"))
    checkArguments weights x0 terminalGradient
    let pieces = partition.Length - 1
    use starts = (use _ = torch.no_grad() in Stacked.solve fieldFor partition x0 [] Sensitivity.Autograd solver control)
    let mutable a = terminalGradient.clone()
    let rows = Array.zeroCreate<Tensor> pieces
    try
        for i in pieces - 1 .. -1 .. 0 do
            use zi = starts[int64 i]
            let span = partition[i], partition[i + 1]
            let integrate (nodes: int) =
                let rule = GaussLegendreRule(partition[i], partition[i + 1], nodes)
                use g = along (fieldFor i) weights zi span a loss rule.Abscissas solver control
                use w = onDeviceOf g rule.Weights [| int64 nodes; 1L |]
                use weighted = g * w
                weighted.sum(0L)
            rows[i] <- converged tolerance $"the stacked gradient of interval {i}" integrate
            let midpoint = 0.5 * (partition[i] + partition[i + 1])
            let g, aStart = alongWithStartAdjoint (fieldFor i) weights zi span a loss [| midpoint |] solver control
            g.Dispose()
            a.Dispose()
            a <- aStart
        torch.stack(rows, 0L)
    finally
        a.Dispose()
        for r in rows do if not (isNull r) then r.Dispose()
