/// The step-size rules of the integration loop (Solve/Loop.fs): the checks before the first step, the first step, the
/// step budget, the checks before each step, the last step landing on the end time, the controller's verdict and the
/// next step; and the failures they raise, with the time.
module internal NeuralOde.Core.StepRules

open System
open TorchSharp
open NeuralOde.Core.Internal

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

/// The checks every solve makes before its first step (the control's options, the time grid, a solver that can
/// control its step, a finite x0, the step budget of fixed steps, rtol against the dtype's roundoff): each raises
/// naming the argument. `finite ()` tells whether x0 is finite; `shape` describes it.
let validateWith (times: float[]) (dtype: torch.ScalarType) (finite: unit -> bool) (shape: string) (tableau: ButcherTableau) (control: StepControl) =
    StepControl.validate control
    Guard.timeGrid "times" times |> ignore
    let t0, tEnd = times[0], times[times.Length - 1]
    match control with
    | StepControl.Adaptive _ when not tableau.IsAdaptive ->
        raise (ArgumentException($"Solver '{tableau.Name}' has no embedded error estimate, so it cannot control its step size. Give it fixed steps (StepControl.Fixed/Steps; C#: StepSize.Fixed/Steps), or use an adaptive solver (bosh3, dopri5, tsit5, dopri8).", "control"))
    | _ -> ()
    if not (finite ()) then
        raise (ArgumentException($"x0 contains NaN or Inf (shape {shape}); the initial state must be finite.", "x0"))
    match control with
    | StepControl.Fixed(dt, budget) when abs (tEnd - t0) / dt > float budget ->
        raise (ArgumentOutOfRangeException("dt", dt, $"Fixed steps of dt = {dt} over [{t0}, {tEnd}] would take {ceil (abs (tEnd - t0) / dt)} steps, more than the step budget maxSteps = {budget}. Use a larger dt, or raise maxSteps if that many steps are meant."))
    | StepControl.Adaptive o when o.RTol < unitRoundoff dtype ->
        raise (ArgumentOutOfRangeException("rtol", o.RTol, $"rtol = {o.RTol} is below the unit roundoff of the state's dtype {dtype} ({unitRoundoff dtype:G3}): rounding alone exceeds it. Use rtol ≥ {unitRoundoff dtype:G3}, or a float64 state."))
    | _ -> ()

/// validateWith for an initial state x0.
let validateSolve (times: float[]) (x0: torch.Tensor) (tableau: ButcherTableau) (control: StepControl) =
    validateWith times x0.dtype (fun () -> TensorOps.allFinite x0) (TensorOps.shapeText x0) tableau control

/// validateSolve for a problem.
let validate (problem: OdeProblem) (tableau: ButcherTableau) (control: StepControl) =
    validateSolve problem.Times problem.X0 tableau control

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
let nextStep (control: StepControl) (errorOrder: int) (t: float) (h: float) (hStep: float) (error: float)
             (previousError: float) (accept: bool) (finished: bool) =
    match control with
    | StepControl.Adaptive o ->
        let direction = float (sign hStep)
        let mutable next = hStep * PIController.factor o errorOrder error previousError
        if abs next > o.MaxStep then next <- direction * o.MaxStep
        if abs next < o.MinStep && not (accept && finished) then
            raise (OdeSolveException(OdeFailure.StepSizeUnderflow, t, $"At t = {t} the controller asks for a step of {abs next}, below minStep = {o.MinStep} (error {error:G3} of the last trial step). Lower minStep, loosen rtol/atol, or check the vector field near this time."))
        next, (if accept then max error 1e-4 else previousError)
    | _ -> h, previousError

