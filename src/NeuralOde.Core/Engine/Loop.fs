/// The integration loop, written once over the state algebra (State/StateAlgebra.fs): steps a Runge–Kutta tableau from
/// the first to the last output time under a step-size control (StepRules), evaluating the requested outputs by dense
/// output. Every solve runs it: on tensors (Solve/Integrate.fs, the front of Ode.solve) and on host buffers (compiled
/// field backends), forward and in the adjoints' backward solves. Each step runs in the algebra's scope; only the state,
/// f at the state and the outputs outlive it, so memory stays flat however many steps are taken.
module internal NeuralOde.Core.Loop

open NeuralOde.Core.State
open NeuralOde.Core.StepRules

/// One accepted step from (T, Y0) to (T + H, Y1) with its stages, and f(T + H, Y1) when the dense output needs it
/// (else null).
type AcceptedStep<'S> = { T: float; H: float; Y0: 'S; Y1: 'S; Ks: 'S[]; F1: 'S }

/// What a run does besides stepping.
type Settings<'S> =
    { /// Entries, from the first, that enter the error norm (the seminorm's channels); negative: all.
      NormChannels: int
      /// Called with each accepted step (after its outputs), its states lent for the call — or, with KeepSteps, given:
      /// the loop then releases none of them (the first step's Y0 is the caller's y0).
      Observer: (AcceptedStep<'S> -> unit) option
      /// Hand every accepted step to the observer, with F1 wherever the dense output needs it, for evaluation anywhere
      /// afterwards (Steps.evaluate).
      KeepSteps: bool
      /// Called on a failure part-way with (the failure, t, y, f(t, y) or null, the last trial step), before the loop's
      /// states are released; the run then returns the failure instead of raising it. None: the failure is raised.
      OnFailure: (OdeSolveException -> float -> 'S -> 'S -> float -> unit) option
      /// A step of another kind in place of the tableau's explicit Runge–Kutta step (a hypersolver's corrected step,
      /// an implicit solver's step): (f, t, y, h, f(t, y)) ↦ Y1 and the stages (Ks[0] = f(t, y)), with the error
      /// estimate under adaptive control (the tableau's ErrorOrder drives the controller; an infinite error rejects
      /// the step and shrinks it). The loop then takes it as not FSAL and reads outputs inside a step by cubic Hermite
      /// interpolation. An implicit tableau needs one (Engine/Integrate.fs gives it the step Implicit/ImplicitStep.fs picks).
      Step: ((float -> 'S -> 'S) -> float -> 'S -> float -> 'S -> RungeKuttaStep.StepResult<'S>) option
      /// Called with each accepted step after its outputs (its states lent for the call; F1 may be null where the
      /// dense output does not need it); returning true ends the run after that step (an event located in it).
      Stop: (AcceptedStep<'S> -> bool) option }

/// Settings that raise failures, keep no steps and take the full error norm.
let plain<'S> : Settings<'S> = { NormChannels = -1; Observer = None; KeepSteps = false; OnFailure = None; Step = None; Stop = None }

/// How a run ended.
type Outcome =
    { Statistics: SolveStatistics
      /// The outputs written: times[1 .. Reached − 1] (times[0] is y0 itself).
      Reached: int
      /// The failure that stopped the run (with OnFailure), if any.
      Failure: OdeSolveException option }

/// Solves dy/dt = f(t, y) from y0 at times[0] (validated by the caller: StepRules.validateSolve) over `times`, calling
/// `output k y` with the state at each times[k], k ≥ 1 (valid during the call only: keep a copy or an alias). y0 stays
/// the caller's; every state f returns becomes the loop's. Raises the loop's OdeSolveExceptions with their times.
let run (algebra: IStateAlgebra<'S>) (field: float -> 'S -> 'S) (y0: 'S) (times: float[]) (tableau: ButcherTableau)
        (control: StepControl) (settings: Settings<'S>) (output: int -> 'S -> unit) : Outcome =
    if tableau.IsImplicit && settings.Step.IsNone then
        invalidArg "tableau" $"The implicit solver '{tableau.Name}' solves its stages on tensors (by Newton iterations, or a Rosenbrock method's linear solves: Ode.solve and solveWith by autograd); this solve has no implicit step."
    let direction = if times[times.Length - 1] > times[0] then 1.0 else -1.0
    let t0, tEnd = times[0], times[times.Length - 1]
    // A step of another kind: not FSAL, Hermite dense output.
    let fsal = tableau.Fsal && settings.Step.IsNone
    let dense = if settings.Step.IsSome then DenseOutput.Hermite else tableau.Dense
    let mutable nfe = 0
    let f t y =
        nfe <- nfe + 1
        field t y
    let isNullS (x: 'S) = isNull (box x)
    let release (x: 'S) = if not (isNullS x) then algebra.Release x
    let keepSteps = settings.KeepSteps && settings.Observer.IsSome
    let adaptive = match control with StepControl.Adaptive _ -> true | _ -> false
    let needsEnd = settings.Step.IsSome || DenseOutputEval.needsEndDerivative tableau
    // Kept steps belong to the observer, so the loop leaves their states alone.
    let owned (x: 'S) = not keepSteps && not (isNullS x) && not (obj.ReferenceEquals(x, y0))
    let mutable y = y0
    let mutable fy = Unchecked.defaultof<'S>
    let mutable t = t0
    let mutable next = 1
    let mutable accepted = 0
    let mutable rejected = 0
    let mutable previousError = 1.0
    let mutable lastErrorNonFinite = false
    let mutable h = 0.0
    // The last trial step's size: a failure is attributed to rows by retrying it (Solve/RowDiagnosis.fs).
    let mutable attempted = 0.0
    let mutable failure = None
    let mutable stopped = false
    /// True when the next output time lies at or before time t (in the direction of integration).
    let outputDueBy (t: float) = next < times.Length && (times[next] - t) * direction <= 0.0
    try
        // In a scope of its own, as every later evaluation is in its step's.
        fy <- (use _ = algebra.Scope() in algebra.Keep(f t0 y0))
        h <- firstStep control t0 tEnd (fun o ->
                InitialStep.select algebra f t0 y0 fy direction tableau.ErrorOrder o.RTol o.ATol (abs (tEnd - t0)))
        let maxSteps = stepBudget control
        try
          while next < times.Length && not stopped do
              Cancellation.check t
              checkStep t h tEnd accepted rejected maxSteps lastErrorNonFinite
                  (fun () -> algebra.AllFinite y) (fun () -> isNullS fy || algebra.AllFinite fy)
              let hStep, tNew, landsOnEnd = stepTo t h tEnd
              attempted <- hStep
              use _ = algebra.Scope()
              let r =
                  match settings.Step with
                  | Some step -> step f t y hStep fy
                  | None -> RungeKuttaStep.step algebra tableau adaptive f t y hStep fy
              let s = r.Ks.Length
              let accept, error =
                  match control with
                  | StepControl.Adaptive o ->
                      let norm = algebra.ErrorNorm(o.RTol, o.ATol, r.Error, y, r.Y1, settings.NormChannels)
                      algebra.Release r.Error
                      let accept, error, nonFiniteNorm = judge t norm (fun () -> algebra.AllFinite fy)
                      lastErrorNonFinite <- nonFiniteNorm
                      accept, error
                  | _ ->
                      // Fixed steps: the algebra checks finiteness now or later (never a device wait per step).
                      match algebra.CheckLater(t, tNew, r.Y1, outputDueBy tNew) with
                      | ValueSome(struct (a, b)) -> raise (nonFinite a $"The state became NaN or Inf in the step from t = {a} to {b}")
                      | ValueNone -> true, 0.0
              if accept then
                  // f at the new state: a FSAL tableau's last stage; otherwise evaluated when dense output needs it.
                  let mutable f1 = if fsal then r.Ks[s - 1] else r.F1
                  if keepSteps && isNullS f1 && needsEnd then f1 <- f tNew r.Y1
                  while outputDueBy tNew do
                      if times[next] = tNew || next = times.Length - 1 && landsOnEnd then output next r.Y1
                      else
                          if isNullS f1 && needsEnd then f1 <- f tNew r.Y1
                          let d = DenseOutputEval.evaluate algebra dense y r.Y1 hStep r.Ks f1 ((times[next] - t) / hStep)
                          output next d
                          algebra.Release d
                      next <- next + 1
                  let yNew = algebra.Keep r.Y1
                  let fNew = if isNullS f1 then f1 else algebra.Keep f1
                  settings.Stop |> Option.iter (fun stop ->
                      stopped <- stop { T = t; H = hStep; Y0 = y; Y1 = yNew; Ks = r.Ks; F1 = fNew })
                  if keepSteps then
                      let ks = r.Ks |> Array.mapi (fun i k -> if i = 0 || obj.ReferenceEquals(k, fNew) then k else algebra.Keep k)
                      settings.Observer.Value { T = t; H = hStep; Y0 = y; Y1 = yNew; Ks = ks; F1 = fNew }
                  else
                      settings.Observer |> Option.iter (fun observe -> observe { T = t; H = hStep; Y0 = y; Y1 = yNew; Ks = r.Ks; F1 = fNew })
                      for i in 1 .. s - 1 do
                          if not (obj.ReferenceEquals(r.Ks[i], fNew)) then algebra.Release r.Ks[i]
                  if owned y then algebra.Release y
                  if not keepSteps then release fy
                  y <- yNew
                  fy <- fNew
                  t <- tNew
                  accepted <- accepted + 1
                  if isNullS fy && next < times.Length then fy <- algebra.Keep(f t y)
              else
                  rejected <- rejected + 1
                  algebra.Release r.Y1
                  for i in 1 .. s - 1 do algebra.Release r.Ks[i]
                  if not (isNullS r.F1) && not (Array.exists (fun k -> obj.ReferenceEquals(k, r.F1)) r.Ks) then algebra.Release r.F1
              let order = if r.Order > 0 then r.Order else tableau.ErrorOrder
              let nextH, remembered = nextStep control order t h hStep error previousError accept (next >= times.Length)
              h <- nextH
              previousError <- remembered
        with :? OdeSolveException as e when settings.OnFailure.IsSome ->
            settings.OnFailure.Value e t y fy (if attempted = 0.0 then h else attempted)
            failure <- Some e
        { Statistics = { FunctionEvaluations = nfe; AcceptedSteps = accepted; RejectedSteps = rejected; Backend = "module"; Switches = [||] }
          Reached = next
          Failure = failure }
    finally
        if owned y then algebra.Release y
        if not keepSteps then release fy
