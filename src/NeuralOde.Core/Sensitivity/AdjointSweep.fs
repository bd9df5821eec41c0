/// The adjoint methods' backward pass, written once over the state algebra: from the last output time back to the
/// first, over the checkpoint grid, the costate [a; μ] is integrated against the forward solution — by backsolve
/// (the augmented system [x; a; μ], x restarted from each checkpoint) or interpolated (the forward solution between two
/// checkpoints recomputed and read by dense output) — with ∂L/∂x(t_k) added to a at each output time t_k (the jumps of
/// Proposition 1 with losses at intermediate times), and dL/dt_k = ∂L/∂x(t_k)·f(t_k, x_k) for the output times.
/// Backends: tensors (Sensitivity/TensorAdjoint.fs, any field, autograd for the products) and host buffers
/// (Sensitivity/CompiledAdjoint.fs, a compiled field backend's products).
module internal NeuralOde.Core.AdjointSweep

open System.Collections.Generic
open TorchSharp
open NeuralOde.Core.State

/// The systems the sweep solves, for an implicit method's Newton matrix.
[<RequireQualifiedAccess>]
type SweepSystem =
    /// The forward field on x (the interpolated adjoint recomputes the forward solution).
    | State
    /// The costate [a; μ] against the forward solution (the interpolated adjoint).
    | Costate
    /// The augmented state [x; a; μ] (the backsolve).
    | Augmented

/// A step of another kind for the loop (Loop.Settings.Step).
type StepFunction<'S> = (float -> 'S -> 'S) -> float -> 'S -> float -> 'S -> RungeKuttaStep.StepResult<'S>

/// What the sweep needs of a field on states 'S.
type IAdjointBackend<'S when 'S: not struct> =
    /// The forward state x.
    abstract State: IStateAlgebra<'S>
    /// The costate [a; μ].
    abstract Costate: IStateAlgebra<'S>
    /// The augmented state [x; a; μ].
    abstract Augmented: IStateAlgebra<'S>
    /// Entries of x (the seminorm's channels count in it).
    abstract StateLength: int
    abstract DType: torch.ScalarType
    /// f(t, x), a new state.
    abstract Field: t: float * x: 'S -> 'S
    /// d/dt [x; a; μ] = [f; −aᵀ ∂f/∂x − w ∂l/∂x; −aᵀ ∂f/∂θ − w ∂l/∂θ] (w: the running loss's weight), a new state.
    abstract AugmentedField: weight: float * t: float * y: 'S -> 'S
    /// w·l(t, x): the running loss's part of an end time's derivative (0 without one).
    abstract LossAt: weight: float * t: float * x: 'S -> float
    /// [x; costate], a new augmented state.
    abstract Join: x: 'S * costate: 'S -> 'S
    /// The costate part of an augmented state, a new costate.
    abstract CostateOf: augmented: 'S -> 'S
    /// [g; 0] from a cotangent g of x.
    abstract StartCostate: g: 'S -> 'S
    /// The a part of a costate, a new state.
    abstract AdjointOf: costate: 'S -> 'S
    /// a += g, in place.
    abstract AddToAdjoint: costate: 'S * g: 'S -> unit
    /// An implicit tableau's step for one of the sweep's solves (the costate's with `stateAt t`, the forward solution
    /// at t, a new state), and what it holds until the solve ends.
    abstract ImplicitStep: system: SweepSystem * tableau: ButcherTableau * control: StepControl * stateAt: (float -> 'S) -> StepFunction<'S> * System.IDisposable

/// One adjoint solve's grids, methods and counters.
type Plan =
    { /// The user's output times.
      Times: float[]
      /// Output times with the checkpoints between them; Grid[OutputIndex[k]] = Times[k].
      Grid: float[]
      OutputIndex: int[]
      Forward: ButcherTableau * StepControl
      Backward: ButcherTableau * StepControl
      Seminorm: bool
      Interpolated: bool
      Statistics: BackwardStatistics }

/// The checkpoint grid: `extra` equally spaced points inside each interval between output times, and where each
/// output time lies in it.
let grid (times: float[]) (extra: int) =
    let points =
        [| for k in 0 .. times.Length - 2 do
               for j in 0 .. extra do
                   yield times[k] + (times[k + 1] - times[k]) * float j / float (extra + 1)
           yield times[times.Length - 1] |]
    points, Array.init times.Length (fun k -> k * (extra + 1))

/// aᵀ f(t, x) + w·l(t, x): the derivative of the loss with respect to an end time.
let private endTimeDerivative (b: IAdjointBackend<'S>) (weight: float) (t: float) (x: 'S) (a: 'S) =
    use _ = torch.no_grad()
    use _ = b.State.Scope()
    OdeSolveException.Calling(t, fun () ->
        let fx = b.Field(t, x)
        let d = b.State.Dot(a, fx)
        b.State.Release fx
        d + b.LossAt(weight, t, x))

/// Runs the loop for one of the sweep's solves: an implicit tableau with the backend's step for that system.
let private runLoop (b: IAdjointBackend<'S>) (system: SweepSystem) (stateAt: float -> 'S) (algebra: IStateAlgebra<'S>) field y times
                    (tableau: ButcherTableau) control (settings: Loop.Settings<'S>) output =
    if not tableau.IsImplicit then Loop.run algebra field y times tableau control settings output
    else
        let step, resources = b.ImplicitStep(system, tableau, control, stateAt)
        try Loop.run algebra field y times tableau control { settings with Step = Some step } output
        finally resources.Dispose()

/// Solves y from `from` back to `until` by the backward method and returns the final state (a new one).
let private solveBack (b: IAdjointBackend<'S>) (plan: Plan) (system: SweepSystem) (stateAt: float -> 'S) (algebra: IStateAlgebra<'S>) (field: float -> 'S -> 'S) (y: 'S) (from: float) (until: float) (channels: int) =
    let tableau, control = plan.Backward
    StepRules.validateWith [| from; until |] b.DType (fun () -> algebra.AllFinite y) "of the adjoint's backward state" tableau control
    let mutable final = Unchecked.defaultof<'S>
    let outcome =
        runLoop b system stateAt algebra field y [| from; until |] tableau control { Loop.plain with NormChannels = channels }
            (fun _ s -> final <- algebra.Keep(algebra.Copy s))
    plan.Statistics.Add outcome.Statistics
    final

/// No forward solution at hand (the backsolve carries x in its state).
let private noState (t: float) : 'S = invalidOp $"The backsolve has no forward solution to evaluate at t = {t}."

/// Backsolve over one segment: [x; a; μ] from `from` back to `until`, x restarted from its checkpoint.
let private backsolveSegment (b: IAdjointBackend<'S>) (plan: Plan) (weight: float) (x: 'S) (costate: 'S) (from: float) (until: float) =
    let augmented = b.Join(x, costate)
    let final =
        try solveBack b plan SweepSystem.Augmented noState b.Augmented (fun t y -> b.AugmentedField(weight, t, y)) augmented from until (if plan.Seminorm then 2 * b.StateLength else -1)
        finally b.Augmented.Release augmented
    let next = b.CostateOf final
    b.Augmented.Release final
    next

/// Interpolated over one segment: the forward solution from the checkpoint at `until` is recomputed and kept, then
/// [a; μ] is integrated from `from` back to `until` against it.
let private interpolatedSegment (b: IAdjointBackend<'S>) (plan: Plan) (weight: float) (xStart: 'S) (costate: 'S) (from: float) (until: float) =
    let tableau, control = plan.Forward
    let steps = List<Loop.AcceptedStep<'S>>()
    try
        let outcome =
            runLoop b SweepSystem.State noState b.State (fun t x -> b.Field(t, x)) xStart [| until; from |] tableau control
                { Loop.plain with Observer = Some steps.Add; KeepSteps = true } (fun _ _ -> ())
        plan.Statistics.Add outcome.Statistics
        let kept = steps.ToArray()
        // Stages of the backward method may lie past the segment (nodes beyond 1): read by the end step's polynomial.
        let stateAt t = Steps.evaluateExtended b.State tableau kept t
        let field t (costate: 'S) =
            let x = stateAt t
            let augmented = b.Join(x, costate)
            b.State.Release x
            let d = b.AugmentedField(weight, t, augmented)
            b.Augmented.Release augmented
            let next = b.CostateOf d
            b.Augmented.Release d
            next
        solveBack b plan SweepSystem.Costate stateAt b.Costate field costate from until (if plan.Seminorm then b.StateLength else -1)
    finally Steps.release b.State steps xStart

/// The backward pass from the cotangents of the outputs (`gOutput k`: ∂L/∂x(t_k)) and the running loss's weight, with
/// the forward solution's states at the grid (`checkpoint m`): the costate [a(t_0); μ(t_0)] (a new state) and dL/dt_k.
/// `checkpoint` and `gOutput` lend their states (valid until the end of the current scope).
let backward (b: IAdjointBackend<'S>) (plan: Plan) (checkpoint: int -> 'S) (gOutput: int -> 'S) (weight: float) : 'S * float[] =
    let times, grid = plan.Times, plan.Grid
    let last = times.Length - 1
    let gTimes = Array.zeroCreate<float> times.Length
    let derivativeAt (weight: float) (t: float) (x: 'S) (costate: 'S) =
        let a = b.AdjointOf costate
        try endTimeDerivative b weight t x a finally b.State.Release a
    let mutable costate =
        use _ = b.Costate.Scope()
        let start = b.StartCostate(gOutput last)
        gTimes[last] <- derivativeAt weight times[last] (checkpoint plan.OutputIndex[last]) start
        b.Costate.Keep start
    try
        let mutable k = last
        for m in grid.Length - 1 .. -1 .. 1 do
            use _ = b.Costate.Scope()
            let next =
                if plan.Interpolated then interpolatedSegment b plan weight (checkpoint (m - 1)) costate grid[m] grid[m - 1]
                else backsolveSegment b plan weight (checkpoint m) costate grid[m] grid[m - 1]
            b.Costate.Release costate
            costate <- b.Costate.Keep next
            if m - 1 = plan.OutputIndex[k - 1] then
                k <- k - 1
                if k > 0 then
                    let g = gOutput k
                    gTimes[k] <- endTimeDerivative b 0.0 times[k] (checkpoint (m - 1)) g
                    b.AddToAdjoint(costate, g)
        (use _ = b.Costate.Scope()
         gTimes[0] <- -(derivativeAt weight times[0] (checkpoint 0) costate))
        plan.Statistics.BackwardPasses <- plan.Statistics.BackwardPasses + 1
        costate, gTimes
    with _ ->
        b.Costate.Release costate
        reraise ()

/// One adjoint solve as the autograd function (Sensitivity/AdjointFunction.fs) runs it, whatever its states.
type IAdjointRun =
    /// The forward pass from x0: the states at the output times [T, …x0.shape], the running loss's integral (0-dim),
    /// and a tensor to save for the backward pass (or null: the run keeps what it needs).
    abstract Forward: x0: torch.Tensor -> torch.Tensor * torch.Tensor * torch.Tensor
    /// The backward pass from the saved tensor, the outputs' cotangents [T, …] and the integral's weight: dL/dx0,
    /// dL/dtimes and the parameters' gradients (in the order of Parameters, each in its parameter's dtype and device).
    abstract Backward: saved: torch.Tensor * gStates: torch.Tensor * weight: float -> torch.Tensor * float[] * torch.Tensor[]
    /// The statistics of the forward pass (after Forward).
    abstract ForwardStatistics: SolveStatistics
