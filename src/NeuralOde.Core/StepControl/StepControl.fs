namespace NeuralOde.Core

open NeuralOde.Core.Internal

/// Options of adaptive step-size control (Hairer, Nørsett & Wanner, "Solving ODEs I", §II.4; Söderlind 2002 for
/// the PI form).
type AdaptiveOptions =
    { /// Relative tolerance (> 0).
      RTol: float
      /// Absolute tolerance (> 0).
      ATol: float
      /// Most steps (accepted plus rejected) before the solve fails.
      MaxSteps: int
      /// First step size; None chooses it with Hairer's heuristic.
      InitialStep: float option
      /// Safety factor applied to the optimal step (0 < safety ≤ 1).
      Safety: float
      /// Smallest factor a step may shrink by.
      MinFactor: float
      /// Largest factor a step may grow by.
      MaxFactor: float
      /// Proportional coefficient β_P of the PI controller (0: a plain I controller, as in torchdiffeq).
      PCoeff: float
      /// Integral coefficient β_I of the PI controller.
      ICoeff: float
      /// Smallest step size (> 0 to enforce, 0 for none): a step the controller shrinks below it fails the solve
      /// with StepSizeUnderflow at once (diffrax's dtmin). The last step, shortened to land on the end time, may be
      /// smaller.
      MinStep: float
      /// Largest step size (+∞ for none): steps are never longer.
      MaxStep: float }

/// How step sizes are chosen.
[<RequireQualifiedAccess>]
type StepControl =
    /// Fixed steps of this size (the last step is shortened to end exactly at the final time). A solve that would
    /// take more than `maxSteps` steps is refused before it starts.
    | Fixed of dt: float * maxSteps: int
    /// A fixed number of equal steps over the whole span, at most `maxSteps`.
    | Steps of count: int * maxSteps: int
    /// Error-controlled steps; needs a solver with an embedded error estimate.
    | Adaptive of AdaptiveOptions

/// Step controls with their defaults and checks: `adaptive rtol atol`, `fixed dt`, `steps n`, `validate`.
module StepControl =
    /// Defaults: rtol 1e-6, atol 1e-9 (tight enough for float64 tests; relax for training), 10,000 steps,
    /// safety 0.9, step factors in [0.2, 10], I controller.
    let defaults =
        { RTol = 1e-6; ATol = 1e-9; MaxSteps = 10_000; InitialStep = None; Safety = 0.9
          MinFactor = 0.2; MaxFactor = 10.0; PCoeff = 0.0; ICoeff = 1.0; MinStep = 0.0; MaxStep = infinity }

    /// The step budget of fixed-step controls unless one is given: a million steps.
    let defaultFixedBudget = 1_000_000

    /// Adaptive control with the given tolerances and the other defaults.
    let adaptive rtol atol = StepControl.Adaptive { defaults with RTol = rtol; ATol = atol }

    /// Fixed steps of size dt (at most a million).
    let fixedStep dt = StepControl.Fixed(dt, defaultFixedBudget)

    /// n equal steps over the span (at most a million: StepControl.Steps(n, budget) for more).
    let steps n = StepControl.Steps(n, defaultFixedBudget)

    /// Checks every option, naming the bad one.
    let validate (control: StepControl) =
        match control with
        | StepControl.Fixed(dt, budget) ->
            Guard.positiveFinite "dt" dt
            Guard.positiveCount "maxSteps" budget
        | StepControl.Steps(n, budget) ->
            Guard.positiveCount "count" n
            Guard.positiveCount "maxSteps" budget
            if n > budget then
                raise (System.ArgumentOutOfRangeException("count", n, $"count = {n} equal steps exceeds the step budget maxSteps = {budget}; raise maxSteps if that many steps are meant."))
        | StepControl.Adaptive o ->
            Guard.positiveFinite "rtol" o.RTol
            Guard.positiveFinite "atol" o.ATol
            Guard.positiveCount "maxSteps" o.MaxSteps
            o.InitialStep |> Option.iter (Guard.positiveFinite "initialStep")
            Guard.positiveFinite "safety" o.Safety
            Guard.positiveFinite "minFactor" o.MinFactor
            Guard.positiveFinite "maxFactor" o.MaxFactor
            if o.MinFactor > 1.0 || o.MaxFactor < 1.0 then
                raise (System.ArgumentException($"minFactor must be at most 1 and maxFactor at least 1; got {o.MinFactor} and {o.MaxFactor}."))
            if o.Safety > 1.0 then
                raise (System.ArgumentOutOfRangeException("safety", o.Safety, $"safety must be in (0, 1]; got {o.Safety}."))
            Guard.finite "pCoeff" o.PCoeff
            Guard.finite "iCoeff" o.ICoeff
            if o.ICoeff + o.PCoeff <= 0.0 then
                raise (System.ArgumentException($"iCoeff + pCoeff must be positive, or a larger error would not shrink the step; got iCoeff = {o.ICoeff}, pCoeff = {o.PCoeff}.", "iCoeff"))
            if System.Double.IsNaN o.MinStep || System.Double.IsInfinity o.MinStep || o.MinStep < 0.0 then
                raise (System.ArgumentOutOfRangeException("minStep", o.MinStep, $"minStep must be a finite number ≥ 0 (0: none); got {o.MinStep}."))
            if System.Double.IsNaN o.MaxStep || o.MaxStep <= 0.0 then
                raise (System.ArgumentOutOfRangeException("maxStep", o.MaxStep, $"maxStep must be greater than zero (+∞: none); got {o.MaxStep}."))
            if o.MinStep > o.MaxStep then
                raise (System.ArgumentException($"minStep ({o.MinStep}) must not exceed maxStep ({o.MaxStep}).", "minStep"))
            o.InitialStep |> Option.iter (fun h ->
                if h < o.MinStep || h > o.MaxStep then
                    raise (System.ArgumentOutOfRangeException("initialStep", h, $"initialStep must lie in [minStep, maxStep] = [{o.MinStep}, {o.MaxStep}]; got {h}.")))
