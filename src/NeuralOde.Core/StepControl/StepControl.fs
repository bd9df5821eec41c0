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
      ICoeff: float }

/// How step sizes are chosen.
[<RequireQualifiedAccess>]
type StepControl =
    /// Fixed steps of this size (the last step is shortened to end exactly at the final time).
    | Fixed of dt: float
    /// A fixed number of equal steps over the whole span.
    | Steps of count: int
    /// Error-controlled steps; needs a solver with an embedded error estimate.
    | Adaptive of AdaptiveOptions

module StepControl =
    /// Defaults: rtol 1e-6, atol 1e-9 (tight enough for float64 tests; relax for training), 10,000 steps,
    /// safety 0.9, step factors in [0.2, 10], I controller.
    let defaults =
        { RTol = 1e-6; ATol = 1e-9; MaxSteps = 10_000; InitialStep = None; Safety = 0.9
          MinFactor = 0.2; MaxFactor = 10.0; PCoeff = 0.0; ICoeff = 1.0 }

    /// Adaptive control with the given tolerances and the other defaults.
    let adaptive rtol atol = StepControl.Adaptive { defaults with RTol = rtol; ATol = atol }

    /// Fixed steps of size dt.
    let fixedStep dt = StepControl.Fixed dt

    /// n equal steps over the span.
    let steps n = StepControl.Steps n

    /// Checks every option, naming the bad one.
    let validate (control: StepControl) =
        match control with
        | StepControl.Fixed dt -> Guard.positiveFinite "dt" dt
        | StepControl.Steps n -> Guard.positiveCount "count" n
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
