/// The segment flows φ_k of multiple shooting, all at once: the segments' start states stacked along a new leading
/// dimension are integrated by one solve in a local time σ ∈ [0, 1], with t = τ_k + σ Δ_k and the field scaled by
/// the segment length Δ_k = τ_{k+1} − τ_k, so each segment sees its own time (depth-varying fields work).
module internal NeuralOde.Core.SegmentFlow

open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

/// g(σ, X) = [Δ_k f(τ_k + σ Δ_k, X_k)]_k for X of shape [N, ...shape]. The field is called once per segment on a
/// state of z0's shape; what it returns is checked before libtorch combines it.
let field (f: VectorField) (times: float[]) : VectorField =
    fun sigma x ->
        let n = times.Length - 1
        let parts =
            Array.init n (fun k ->
                use scope = torch.NewDisposeScope()
                let dt = times[k + 1] - times[k]
                use xk = x.select(0L, int64 k)
                // Not `use`: the field may return a tensor it does not own; the scope frees what it made.
                let fk = f (times[k] + sigma * dt) xk
                if isNull fk then raise (System.ArgumentException("The field returned null.", "field"))
                if fk.shape <> xk.shape || fk.dtype <> xk.dtype then
                    raise (System.ArgumentException($"The field returned a {fk.dtype} tensor of shape {TensorOps.shapeText fk} for a {xk.dtype} state of shape {TensorOps.shapeText xk}.", "field"))
                (TensorOps.scale fk dt).MoveToOuterDisposeScope())
        try torch.stack(parts, 0L)
        finally for p in parts do p.Dispose()

/// φ(X): every segment's start state X_k (X of shape [N, ...shape]) carried over its segment by `steps` equal steps
/// of `solver`, by one solve. Differentiable by autograd.
let flow (f: VectorField) (times: float[]) (solver: ButcherTableau) (steps: int) (x: Tensor) : Tensor =
    let problem = OdeProblem.create (field f times) x [| 0.0; 1.0 |]
    let solution = Ode.solve problem solver (StepControl.steps steps)
    use states = solution.States
    states.select(0L, 1L)

/// The default initial guess: z0 carried segment by segment with one step of `solver` each (a coarse sequential
/// solve, without gradients). Shape [N + 1, ...z0.shape].
let coarse (f: VectorField) (times: float[]) (solver: ButcherTableau) (z0: Tensor) : Tensor =
    use _ = torch.no_grad()
    let states = ResizeArray<Tensor>([ z0.detach() ])
    try
        for k in 0 .. times.Length - 2 do
            use scope = torch.NewDisposeScope()
            let segment = [| times[k]; times[k + 1] |]
            use solution = Ode.odeint f states[k] segment solver (StepControl.steps 1)
            states.Add(solution.States.select(0L, 1L).detach().MoveToOuterDisposeScope())
        torch.stack(states, 0L)
    finally
        for s in states do s.Dispose()
