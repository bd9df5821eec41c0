/// The integration loop: steps a Runge–Kutta tableau from the first to the last output time under a step-size
/// control, evaluating the requested outputs by dense output. Every step runs in its own dispose scope; only the
/// state, f at the state and the outputs outlive it, so native memory stays flat however many steps are taken.
module internal NeuralOde.Core.Integrate

open System
open TorchSharp
open NeuralOde.Core.Internal

type Tensor = torch.Tensor

let private mismatch (what: string) (t: float) (x: Tensor) (dx: Tensor) =
    OdeSolveException(
        OdeFailure.VectorFieldMismatch, t,
        $"The vector field returned a tensor whose {what} differs from the state's at t = {t}: state {TensorOps.shapeText x} {x.dtype} on {x.device}, f(t, x) {TensorOps.shapeText dx} {dx.dtype} on {dx.device}. f must return dx/dt with the state's shape, dtype and device.")

/// Wraps f to count evaluations and to check that each output matches the state (metadata only: no host sync).
/// f with its output checked against x (shape, dtype, device). `scope ()` is the dispose scope the evaluation runs
/// in: the loop disposes the derivatives it is done with, so f's result must be a tensor made in that scope. When
/// it is not — f returned its input (dx/dt = x as `fun _ x -> x`) or a tensor someone else owns (a constant field
/// returning a captured tensor) — the loop gets a wrapper of its own (alias: same data, no copy), and disposing it
/// leaves the original alone.
let private checkedField (f: VectorField) (count: int ref) (scope: unit -> DisposeScope) : float -> Tensor -> Tensor =
    fun t x ->
        count.Value <- count.Value + 1
        // Whatever f raises comes out as an OdeSolveException with the time, f's exception inside.
        let dx = OdeSolveException.Calling(t, fun () -> f t x)
        if isNull dx then raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t, $"The vector field returned null at t = {t}."))
        if dx.IsInvalid then raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t, $"The vector field returned a disposed tensor at t = {t}: return a new tensor (a `using`/`use` on the result, or a dispose scope ended inside f, frees it before the solver reads it)."))
        if dx.shape <> x.shape then raise (mismatch "shape" t x dx)
        if dx.dtype <> x.dtype then raise (mismatch "dtype" t x dx)
        if dx.device_type <> x.device_type || dx.device_index <> x.device_index then raise (mismatch "device" t x dx)
        let current = scope ()
        let madeHere = not (obj.ReferenceEquals(dx, x)) && not (isNull current) && current.Contains dx
        if madeHere then dx else dx.alias()

/// The failure of a state or field value that is NaN or Inf at time t.
let internal nonFinite (t: float) (what: string) =
    OdeSolveException(OdeFailure.NonFiniteValue, t, $"{what} at t = {t}. Check the vector field for divisions by zero, logarithms of non-positive values or blow-up of the solution before t.")

/// The smallest step that still advances time t: four ulps of t. (Relative to the time, not to the span: a span of
/// 1e12 may well start with steps of 1e-6 at t = 0.)
let internal minimumStep (t: float) = 4.0 * (Math.BitIncrement(abs t) - abs t)

/// The unit roundoff u of a floating-point dtype (half the gap between 1 and the next number): no relative tolerance
/// below it can be met.
let private unitRoundoff (dtype: torch.ScalarType) =
    match dtype with
    | torch.ScalarType.Float32 -> 0.5 * 1.1920928955078125e-7
    | torch.ScalarType.Float16 -> 0.5 * 9.765625e-4
    | torch.ScalarType.BFloat16 -> 0.5 * 7.8125e-3
    | _ -> 0.5 * 2.220446049250313e-16

/// Knobs of the integration loop that the public API does not expose.
type Settings =
    { /// The scaled error norm (rtol, atol, err, y0, y1) → 0-dim tensor; None uses ErrorNorm.scaled. Adjoint solves
      /// pass a seminorm here.
      ErrorNorm: (float -> float -> Tensor -> Tensor -> Tensor -> Tensor) option
      /// Keep every accepted step (for dense evaluation anywhere afterwards).
      Record: bool
      /// Raise an OdeSolveException when the loop fails (true), or return the outputs reached with the failure in
      /// the solution's Status (false: Ode.trySolve).
      Throw: bool }

let defaultSettings = { ErrorNorm = None; Record = false; Throw = true }

/// The checks every solve makes before its first step (the control's options, the time grid, a solver that can
/// control its step, a finite x0, the step budget of fixed steps, rtol against the dtype's roundoff): each raises
/// naming the argument. Shared with the fused solver (Fused/FusedRungeKutta.fs).
let validate (problem: OdeProblem) (tableau: ButcherTableau) (control: StepControl) =
    StepControl.validate control
    Guard.timeGrid "times" problem.Times |> ignore
    let t0, tEnd = problem.T0, problem.T1
    let x0 = problem.X0
    match control with
    | StepControl.Adaptive _ when not tableau.IsAdaptive ->
        raise (ArgumentException($"Solver '{tableau.Name}' has no embedded error estimate, so it cannot control its step size. Give it fixed steps (StepControl.Fixed/Steps; C#: StepSize.Fixed/Steps), or use an adaptive solver (bosh3, dopri5, tsit5, dopri8).", "control"))
    | _ -> ()
    if not (TensorOps.allFinite x0) then
        raise (ArgumentException($"x0 contains NaN or Inf (shape {TensorOps.shapeText x0}); the initial state must be finite.", "x0"))
    match control with
    | StepControl.Fixed(dt, budget) when abs (tEnd - t0) / dt > float budget ->
        raise (ArgumentOutOfRangeException("dt", dt, $"Fixed steps of dt = {dt} over [{t0}, {tEnd}] would take {ceil (abs (tEnd - t0) / dt)} steps, more than the step budget maxSteps = {budget}. Use a larger dt, or raise maxSteps if that many steps are meant."))
    | StepControl.Adaptive o when o.RTol < unitRoundoff x0.dtype ->
        raise (ArgumentOutOfRangeException("rtol", o.RTol, $"rtol = {o.RTol} is below the unit roundoff of the state's dtype {x0.dtype} ({unitRoundoff x0.dtype:G3}): rounding alone exceeds it. Use rtol ≥ {unitRoundoff x0.dtype:G3}, or a float64 state."))
    | _ -> ()

// The step-size rules of the integration loop, shared with the loop on host buffers (Fused/BufferIntegrator.fs).

/// The first step, signed: dt, or the span over n, for fixed steps; for adaptive control the given initial step, or
/// `heuristic o` (Hairer's: InitialStep.select, one evaluation) clamped to [minStep, maxStep].
let firstStep (control: StepControl) (t0: float) (tEnd: float) (heuristic: AdaptiveOptions -> float) =
    let direction = if tEnd > t0 then 1.0 else -1.0
    match control with
    | StepControl.Fixed(dt, _) -> direction * dt
    | StepControl.Steps(n, _) -> (tEnd - t0) / float n
    | StepControl.Adaptive o ->
        let h0 =
            match o.InitialStep with
            | Some h0 -> h0
            | None -> min o.MaxStep (max o.MinStep (heuristic o))
        direction * h0

/// The steps (accepted and rejected) a solve may take.
let stepBudget (control: StepControl) =
    match control with
    | StepControl.Adaptive o -> o.MaxSteps
    | StepControl.Fixed(_, budget) | StepControl.Steps(_, budget) -> budget + 1

/// The checks before a step of h from t: a finite h (a NaN step mostly comes from NaN or Inf in the state or f,
/// through the first-step heuristic: `stateFinite` and `fieldFinite` name that), the step budget, and a step that
/// still advances time (`lastErrorNonFinite`: the last trial steps gave NaN or Inf).
let checkStep (t: float) (h: float) (tEnd: float) (accepted: int) (rejected: int) (maxSteps: int) (lastErrorNonFinite: bool)
              (stateFinite: unit -> bool) (fieldFinite: unit -> bool) =
    if Double.IsNaN h || Double.IsInfinity h then
        if not (stateFinite ()) then raise (nonFinite t "The state is NaN or Inf")
        if not (fieldFinite ()) then raise (nonFinite t "The vector field returned NaN or Inf")
        raise (OdeSolveException(OdeFailure.InvalidStepSize, t, $"The step size became {h} at t = {t}. Check the controller's options and that the state and the vector field are finite and not overflowing; or give initialStep."))
    if accepted + rejected >= maxSteps then
        raise (OdeSolveException(OdeFailure.MaxStepsExceeded, t, $"The step budget of {maxSteps} steps ({accepted} accepted, {rejected} rejected) ran out at t = {t}, before the end time {tEnd}. Increase MaxSteps, loosen rtol/atol, or check whether the problem is stiff."))
    if abs h < minimumStep t || t + h = t then
        let why = if lastErrorNonFinite then " The last trial steps produced NaN or Inf: the solution may blow up near this time." else " The problem may be stiff or the vector field may be singular here; try looser tolerances."
        raise (OdeSolveException(OdeFailure.StepSizeUnderflow, t, $"Step size underflow at t = {t}: step h = {h} no longer advances time.{why}"))

/// The step taken from t with step h: h, or what is left to tEnd when that is within h (the last step lands on tEnd
/// exactly); with the step's end time and whether it lands on tEnd.
let stepTo (t: float) (h: float) (tEnd: float) =
    let remaining = tEnd - t
    let landsOnEnd = abs remaining <= abs h * (1.0 + 1e-10)
    let hStep = if landsOnEnd then remaining else h
    hStep, (if landsOnEnd then tEnd else t + hStep), landsOnEnd

/// The controller's verdict on a trial step from t with scaled error norm `norm`: (accepted, the error the controller
/// uses, the norm was NaN or Inf). A NaN or Inf norm rejects the step with an infinite error, unless f was already
/// NaN or Inf at the step's start (`fieldFinite`), which fails the solve.
let judge (t: float) (norm: float) (fieldFinite: unit -> bool) =
    if Double.IsNaN norm || Double.IsInfinity norm then
        if not (fieldFinite ()) then raise (nonFinite t "The vector field returned NaN or Inf")
        false, Double.PositiveInfinity, true
    else norm <= 1.0, norm, false

/// The step after a trial step of hStep from t, and the error the controller remembers: under adaptive control the PI
/// controller's step (at most maxStep; below minStep the solve fails, unless it has just `finished`), h unchanged
/// otherwise.
let nextStep (control: StepControl) (tableau: ButcherTableau) (t: float) (h: float) (hStep: float) (error: float)
             (previousError: float) (accept: bool) (finished: bool) =
    match control with
    | StepControl.Adaptive o ->
        let direction = float (sign hStep)
        let mutable next = hStep * PIController.factor o tableau.ErrorOrder error previousError
        if abs next > o.MaxStep then next <- direction * o.MaxStep
        if abs next < o.MinStep && not (accept && finished) then
            raise (OdeSolveException(OdeFailure.StepSizeUnderflow, t, $"At t = {t} the controller asks for a step of {abs next}, below minStep = {o.MinStep} (error {error:G3} of the last trial step). Lower minStep, loosen rtol/atol, or check the vector field near this time."))
        next, (if accept then max error 1e-4 else previousError)
    | _ -> h, previousError

/// Solves the problem with the tableau under the step control, with the given settings; returns the solution and,
/// when recording, the trajectory of accepted steps (else None).
let solveWith (settings: Settings) (problem: OdeProblem) (tableau: ButcherTableau) (control: StepControl) : OdeSolution * DenseTrajectory option =
    validate problem tableau control
    let times = problem.Times
    let direction = problem.Direction
    let t0, tEnd = problem.T0, problem.T1
    let x0 = problem.X0
    let nfe = ref 0
    // The dispose scope evaluations of f run in (the first evaluation's, then each step's).
    let mutable evaluationScope: DisposeScope = null
    let f = checkedField problem.VectorField nfe (fun () -> evaluationScope)
    let outputs = Array.zeroCreate<Tensor> times.Length
    outputs[0] <- x0
    let records = ResizeArray<StepRecord>()
    let errorNorm = defaultArg settings.ErrorNorm ErrorNorm.scaled
    // Recorded steps own the states and derivatives they hold, so the loop leaves those alone when recording.
    let owned (x: Tensor) = not settings.Record && not (isNull x) && not (obj.ReferenceEquals(x, x0))
    let mutable y = x0
    let mutable fy: Tensor = null
    let mutable t = t0
    let mutable next = 1
    let mutable accepted = 0
    let mutable rejected = 0
    let mutable previousError = 1.0
    let mutable lastErrorNonFinite = false
    // The last trial step's size: a failed trySolve attributes its failure to rows by retrying it (RowDiagnosis).
    let mutable attempted = 0.0
    // Fixed steps: a finiteness flag per step, written on the device into one preallocated buffer and read once
    // per output or per `checkEvery` steps (never a host sync per step). The buffer is made once: small tensors
    // kept alive across steps would interleave with the steps' large transient ones and fragment the native heap
    // (measured: +1.2 MB of resident memory per step of W4's adjoint while malloc's bytes in use stayed flat).
    let checkEvery = 64
    /// True when the next output time lies at or before time t (in the direction of integration).
    let outputDueBy (t: float) = next < times.Length && (times[next] - t) * direction <= 0.0
    let mutable flags: Tensor = null
    let pendingSteps = Array.zeroCreate<float * float> checkEvery
    let mutable pending = 0
    let checkPending () =
        if pending > 0 then
            use written = flags.narrow(0L, 0L, int64 pending)
            use allFinite = written.all()
            if not (allFinite.item<bool>()) then
                use asInt = written.to_type(torch.int32)
                use first = asInt.argmin()
                let tBad, tBadEnd = pendingSteps[int (first.item<int64>())]
                raise (nonFinite tBad $"The state became NaN or Inf in the step from t = {tBad} to {tBadEnd}")
            pending <- 0
    let flagStep (tStart: float) (tEnd: float) (y1: Tensor) =
        if isNull flags then flags <- torch.ones([| int64 checkEvery |], dtype = torch.ScalarType.Bool, device = y1.device).MoveToOuterDisposeScope()
        use isFinite = torch.isfinite y1
        use all = isFinite.all()
        use slot = flags.select(0L, int64 pending)
        slot.copy_(all) |> ignore
        pendingSteps[pending] <- (tStart, tEnd)
        pending <- pending + 1
    try
        // In a scope of its own, as every later evaluation is in its step's: what the field leaves undisposed
        // (its intermediates) is freed here, not left to the caller's scope or the finaliser.
        // The first evaluation also checks that f leaves its input alone: a field that modifies x in place
        // (x.neg_()) would silently corrupt the caller's x0 and every stage after it. One copy of x0 per solve.
        let pristine = (use _ = torch.no_grad() in (use d = x0.detach() in d.clone()))
        fy <-
            (use first = torch.NewDisposeScope()
             evaluationScope <- first
             (f t0 x0).MoveToOuterDisposeScope())
        (use _ = pristine
         use _ = torch.no_grad()
         if not (x0.allclose(pristine, 0.0, 0.0)) then
            // Give the caller back the x0 they passed.
            (use d = x0.detach() in d.copy_(pristine) |> ignore)
            raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t0, $"The vector field modified its input x in place at t = {t0} (an in-place operation such as x.neg_() or x.add_(...)). f must return dx/dt as a new tensor and leave x unchanged; x0 has been restored.")))
        // Until the first step's scope: the first-step heuristic evaluates f in a scope of its own, so its results
        // count as not made here and are aliased.
        evaluationScope <- null
        let mutable h =
            firstStep control t0 tEnd (fun o ->
                InitialStep.select f t0 x0 fy direction tableau.ErrorOrder o.RTol o.ATol (abs (tEnd - t0)))
        let maxSteps = stepBudget control
        let mutable status = SolveStatus.Succeeded
        let mutable failedRows = [||]
        try
          while next < times.Length do
              Cancellation.check t
              checkStep t h tEnd accepted rejected maxSteps lastErrorNonFinite
                  (fun () -> TensorOps.allFinite y) (fun () -> isNull fy || TensorOps.allFinite fy)
              let hStep, tNew, landsOnEnd = stepTo t h tEnd
              attempted <- hStep
              use scope = torch.NewDisposeScope()
              evaluationScope <- scope
              let r = RungeKuttaStep.step tableau f t y hStep fy
              let accept, error =
                  match control, r.Error with
                  | StepControl.Adaptive o, Some err ->
                      use norm = errorNorm o.RTol o.ATol err y r.Y1
                      let accept, error, nonFiniteNorm = judge t (norm.ToDouble()) (fun () -> TensorOps.allFinite fy)
                      lastErrorNonFinite <- nonFiniteNorm
                      accept, error
                  | _ ->
                      // Fixed steps never wait for the device: each step leaves a finiteness flag there, and the flags
                      // are read when an output is due or the buffer is full.
                      flagStep t tNew r.Y1
                      if pending = checkEvery || outputDueBy tNew then checkPending ()
                      true, 0.0
              if accept then
                  let mutable f1: Tensor = if tableau.Fsal then r.Ks[r.Ks.Length - 1] else null
                  if settings.Record && isNull f1 && DenseOutputEval.needsEndDerivative tableau then f1 <- f tNew r.Y1
                  while outputDueBy tNew do
                      let out =
                          if times[next] = tNew || next = times.Length - 1 && landsOnEnd then r.Y1.alias()
                          else
                              if isNull f1 && DenseOutputEval.needsEndDerivative tableau then f1 <- f tNew r.Y1
                              DenseOutputEval.evaluate tableau.Dense y r.Y1 hStep r.Ks f1 ((times[next] - t) / hStep)
                      outputs[next] <- out.MoveToOuterDisposeScope()
                      next <- next + 1
                  let yNew = r.Y1.MoveToOuterDisposeScope()
                  let fNew = if isNull f1 then null else f1.MoveToOuterDisposeScope()
                  if settings.Record then
                      let ks = r.Ks |> Array.map (fun k -> if obj.ReferenceEquals(k, fy) then k else k.MoveToOuterDisposeScope())
                      let y0 = if obj.ReferenceEquals(y, x0) then x0.alias().MoveToOuterDisposeScope() else y
                      records.Add { T = t; H = hStep; Y0 = y0; Y1 = yNew; Ks = ks; F1 = fNew }
                  if owned y then y.Dispose()
                  if not settings.Record then fy.Dispose()
                  y <- yNew
                  fy <- fNew
                  t <- tNew
                  accepted <- accepted + 1
                  if isNull fy && next < times.Length then
                      fy <- (f t y).MoveToOuterDisposeScope()
              else
                  rejected <- rejected + 1
              let nextH, remembered = nextStep control tableau t h hStep error previousError accept (next >= times.Length)
              h <- nextH
              previousError <- remembered
        with :? OdeSolveException as e when not settings.Throw ->
            status <- SolveStatus.Failed(e.Failure, e.Time, e.Message)
            failedRows <-
                match e.Failure with
                | OdeFailure.NonFiniteValue | OdeFailure.StepSizeUnderflow | OdeFailure.MaxStepsExceeded | OdeFailure.InvalidStepSize ->
                    RowDiagnosis.rows tableau problem.VectorField control t y fy (if attempted = 0.0 then h else attempted)
                | _ -> [||]
        // On failure (trySolve) the outputs reached so far: times[0 .. next − 1].
        let states = torch.stack(outputs[0 .. next - 1])
        let solution =
            { Times = times[0 .. next - 1]
              States = states
              Integral = None
              Statistics = { FunctionEvaluations = nfe.Value; AcceptedSteps = accepted; RejectedSteps = rejected }
              Backward = BackwardStatistics()
              Status = status
              FailedRows = failedRows }
        let trajectory = if settings.Record then Some(new DenseTrajectory(tableau, records.ToArray())) else None
        records.Clear()
        solution, trajectory
    finally
        if not (isNull flags) then flags.Dispose()
        for i in 1 .. outputs.Length - 1 do
            if not (isNull outputs[i]) && not (obj.ReferenceEquals(outputs[i], x0)) then outputs[i].Dispose()
        if owned y then y.Dispose()
        if not settings.Record && not (isNull fy) then fy.Dispose()
        // On failure, recorded steps are still here: free them.
        if records.Count > 0 then (new DenseTrajectory(tableau, records.ToArray()) :> IDisposable).Dispose()

/// Solves the problem with the tableau under the step control; see Ode.solve.
let solve (problem: OdeProblem) (tableau: ButcherTableau) (control: StepControl) : OdeSolution =
    fst (solveWith defaultSettings problem tableau control)
