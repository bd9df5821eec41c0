/// Multiple shooting (Massaroli, Poli, Park, Yamashita & Asama, "Differentiable Multiple Shooting Layers", NeurIPS
/// 2021): dz/dt = f(t, z) over [τ_0, τ_N] split into N segments; the unknowns are the boundary states
/// B = (b_0 = z0, b_1, …, b_N), and the sweeps of a ShootingVariant drive the defects b_{k+1} − φ_k(b_k) to zero,
/// where φ_k carries a state over [τ_k, τ_{k+1}] with a fine solver — every segment by one solve.
namespace NeuralOde.Core

open System
open TorchSharp
open NeuralOde.Core.Internal

/// Solving by multiple shooting: `solve` from a coarse initial guess, `solveFrom` from one of the caller's.
module MultipleShooting =
    /// The most elements the Direct variant's Jacobians may hold together (N·D², for N segments of D elements).
    let maxJacobianElements = 50_000_000L

    let private check (variant: ShootingVariant) (f: VectorField) (z0: torch.Tensor) (times: float[]) (fineSolver: ButcherTableau)
                      (fineSteps: int) (maxIterations: int) (tolerance: float) =
        if isNull (box f) then raise (ArgumentNullException("field"))
        if isNull z0 then raise (ArgumentNullException("z0"))
        if z0.IsInvalid then raise (ObjectDisposedException("z0", "z0 has been disposed."))
        if isNull (box fineSolver) then raise (ArgumentNullException("fineSolver"))
        if isNull times then raise (ArgumentNullException("times"))
        if times.Length < 2 then
            raise (ArgumentException($"times must hold the boundaries τ_0 < … < τ_N of at least one segment; got {times.Length} point(s).", "times"))
        if Guard.timeGrid "times" times < 0.0 then
            raise (ArgumentException($"times must be strictly increasing; got times[0] = {times[0]} and times[1] = {times[1]}.", "times"))
        if not (torch.is_floating_point z0) then
            raise (ArgumentException($"z0 must be a real floating-point tensor; got dtype {z0.dtype}.", "z0"))
        if z0.numel() = 0L then raise (ArgumentException($"z0 has no elements (shape {TensorOps.shapeText z0}).", "z0"))
        if not (TensorOps.allFinite z0) then raise (ArgumentException("z0 holds NaN or infinite values.", "z0"))
        Guard.positiveCount "fineSteps" fineSteps
        if fineSteps > 1_000_000 then
            raise (ArgumentOutOfRangeException("fineSteps", fineSteps, $"fineSteps must be at most 1000000; got {fineSteps}."))
        if maxIterations < 0 then
            raise (ArgumentOutOfRangeException("maxIterations", maxIterations, $"maxIterations must be zero or more; got {maxIterations}."))
        Guard.positiveFinite "tolerance" tolerance
        // One evaluation of the field at (τ_0, z0): a wrong shape is named here, before any solve.
        // In a dispose scope, not `use`: a field may return a tensor it does not own (its input, a captured constant).
        (use _ = torch.no_grad()
         use scope = torch.NewDisposeScope()
         let d = z0.detach()
         let probe = f times[0] d
         if isNull probe then raise (ArgumentException("The field returned null.", "field"))
         if probe.shape <> z0.shape || probe.dtype <> z0.dtype then
             raise (ArgumentException($"The field returned a {probe.dtype} tensor of shape {TensorOps.shapeText probe} for a {z0.dtype} state of shape {TensorOps.shapeText z0}; it must return dz/dt with z's shape and dtype.", "field")))
        if variant = ShootingVariant.Direct then
            let n, d = int64 (times.Length - 1), z0.numel()
            if d > 1_000_000L || n * d * d > maxJacobianElements then
                raise (ArgumentException($"The Direct variant forms N·D² = {n}·{d}² Jacobian entries, more than {maxJacobianElements}; use ShootingVariant.Forward, which forms none.", "variant"))

    let private checkGuess (z0: torch.Tensor) (times: float[]) (guess: torch.Tensor) =
        if isNull guess then raise (ArgumentNullException("initialGuess"))
        if guess.IsInvalid then raise (ObjectDisposedException("initialGuess", "initialGuess has been disposed."))
        let expected = Array.append [| int64 times.Length |] z0.shape
        if guess.shape <> expected then
            let want = "[" + (expected |> Array.map string |> String.concat ", ") + "]"
            raise (ArgumentException($"initialGuess must have shape [N + 1, ...z0.shape] = {want}; got {TensorOps.shapeText guess}.", "initialGuess"))
        if guess.dtype <> z0.dtype || guess.device_type <> z0.device_type || guess.device_index <> z0.device_index then
            raise (ArgumentException($"initialGuess must have z0's dtype and device ({z0.dtype}, {z0.device}); got {guess.dtype}, {guess.device}.", "initialGuess"))
        if not (TensorOps.allFinite guess) then raise (ArgumentException("initialGuess holds NaN or infinite values.", "initialGuess"))

    /// Per-segment defects ‖b_{k+1} − Φ_k‖_∞.
    let private defects (b: torch.Tensor) (phi: torch.Tensor) =
        let n = phi.shape[0]
        use next = b.narrow(0L, 1L, n)
        use d = next.sub(phi)
        use a = d.abs()
        use flat = a.reshape([| n; -1L |])
        use m = flat.amax([| 1L |])
        TensorOps.hostValues m

    /// Whether the states must carry gradients: grad mode is on and z0 or the field's tensors require grad (one
    /// evaluation of the field tells).
    let private wantsGradients (f: VectorField) (z0: torch.Tensor) (t0: float) =
        torch.is_grad_enabled ()
        && (z0.requires_grad
            || (use scope = torch.NewDisposeScope()
                let probe = f t0 (z0.detach())
                not (isNull probe) && probe.requires_grad))

    /// One Newton sweep with exact Jacobian–vector products at the converged states B̄, kept differentiable:
    /// b_0 = z0, b_{k+1} = φ_k(b̄_k) + J_k (b_k − b̄_k). Its derivative is the implicit function theorem's:
    /// db_{k+1} = J_k db_k + ∂φ_k/∂θ dθ, the sequential solve's chain rule. The values returned are B̄'s exactly
    /// (B̄ + sweep − sweep.detach()), so asking for gradients never changes the states, converged or not.
    let private differentiable (f: VectorField) (times: float[]) (solver: ButcherTableau) (steps: int) (z0: torch.Tensor) (b: torch.Tensor) =
        use scope = torch.NewDisposeScope()
        let n = int64 (times.Length - 1)
        use first = b.narrow(0L, 0L, n)
        let x = first.detach().requires_grad_(true)
        let phi = SegmentFlow.flow f times solver steps x
        let t = Linearisation.tangent phi x
        let sweep = NewtonSweep.recursion true z0 b phi (fun k delta -> Linearisation.jvp t k delta true)
        (b + (sweep - sweep.detach())).MoveToOuterDisposeScope()

    /// Multiple shooting from the initial guess `initialGuess` ([N + 1, ...z0.shape]; its first state is replaced by
    /// z0): see `solve`.
    let solveFrom (initialGuess: torch.Tensor) (variant: ShootingVariant) (field: VectorField) (z0: torch.Tensor) (times: float[])
                  (fineSolver: ButcherTableau) (fineSteps: int) (maxIterations: int) (tolerance: float) : ShootingSolution =
        check variant field z0 times fineSolver fineSteps maxIterations tolerance
        checkGuess z0 times initialGuess
        let times = Array.copy times
        let n = int64 (times.Length - 1)
        let z0Value = z0.detach()
        let mutable b =
            use g = initialGuess.detach()
            use rest = g.narrow(0L, 1L, n)
            use head = z0Value.unsqueeze(0L)
            torch.cat([| head; rest |], 0L)
        let history = ResizeArray<float[]>()
        let mutable iterations = 0
        let mutable finished = false
        let mutable converged = false
        try
            while not finished do
                use scope = torch.NewDisposeScope()
                let linearise = variant <> ShootingVariant.Zero && iterations < maxIterations
                use first = b.narrow(0L, 0L, n)
                let x = if linearise then first.detach().requires_grad_(true) else first.detach()
                let phi =
                    if linearise then SegmentFlow.flow field times fineSolver fineSteps x
                    else
                        use _ = torch.no_grad()
                        SegmentFlow.flow field times fineSolver fineSteps x
                let d = defects b phi
                history.Add d
                let worst = Array.max d
                if worst <= tolerance then
                    converged <- true
                    finished <- true
                elif iterations >= maxIterations || Double.IsNaN worst || Double.IsInfinity worst then finished <- true
                else
                    let next = NewtonSweep.sweep variant z0Value b x phi
                    let detached = next.detach().MoveToOuterDisposeScope()
                    b.Dispose()
                    b <- detached
                    iterations <- iterations + 1
            let states =
                if wantsGradients field z0 times[0] then
                    try differentiable field times fineSolver fineSteps z0 b
                    finally b.Dispose()
                else b
            { Times = times; States = states; Iterations = iterations
              Defects = history |> Seq.map Array.max |> Array.ofSeq
              SegmentDefects = history.ToArray(); Converged = converged }
        with _ ->
            if not b.IsInvalid then b.Dispose()
            reraise ()

    /// Solves dz/dt = f(t, z) from z0 at times[0] by multiple shooting over the segments [times[k], times[k+1]]
    /// (strictly increasing boundaries): each segment's flow φ_k is `fineSteps` equal steps of `fineSolver`, all
    /// segments in one solve; the initial guess is a coarse sequential solve (one step of `fineSolver` per segment);
    /// `variant` sweeps until every defect ‖b_{k+1} − φ_k(b_k)‖_∞ is at most `tolerance` (absolute) or
    /// `maxIterations` sweeps are made. The boundary states are differentiable with respect to z0 and the field's
    /// tensors (by the implicit function theorem at the converged states, whatever the variant). Bad arguments
    /// raise ArgumentException naming them.
    let solve (variant: ShootingVariant) (field: VectorField) (z0: torch.Tensor) (times: float[]) (fineSolver: ButcherTableau)
              (fineSteps: int) (maxIterations: int) (tolerance: float) : ShootingSolution =
        check variant field z0 times fineSolver fineSteps maxIterations tolerance
        use guess = SegmentFlow.coarse field times fineSolver z0
        solveFrom guess variant field z0 times fineSolver fineSteps maxIterations tolerance
