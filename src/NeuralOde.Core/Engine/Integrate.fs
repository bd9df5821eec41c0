/// The tensor front of the integration loop (Solve/Loop.fs): a problem's field checked at every evaluation (shape,
/// dtype, device, left its input alone), the outputs stacked, the accepted steps kept for dense evaluation, and a
/// failure attributed to rows. The loop itself runs on the tensor state algebra (State/TensorAlgebra.fs).
module internal NeuralOde.Core.Integrate

open System
open TorchSharp
open NeuralOde.Core.Internal
open NeuralOde.Core.State

type Tensor = torch.Tensor

/// f with its output checked against x (shape, dtype, device; metadata only: no host sync). The loop releases the
/// derivatives it is done with, so f's result must be a tensor made in the step's dispose scope (`scope ()`). When it
/// is not — f returned its input (dx/dt = x as `fun _ x -> x`) or a tensor someone else owns (a constant field
/// returning a captured tensor) — the loop gets a wrapper of its own (alias: same data, no copy), and releasing it
/// leaves the original alone.
let private checkedField (name: FieldCheck.Named) (f: VectorField) (scope: unit -> DisposeScope) : float -> Tensor -> Tensor =
    fun t x ->
        // Whatever f raises comes out as an OdeSolveException with the time, f's exception inside (FieldCheck).
        let dx = FieldCheck.call name f t x
        let current = scope ()
        let madeHere = not (obj.ReferenceEquals(dx, x)) && not (isNull current) && current.Contains dx
        if madeHere then dx else dx.alias()

/// f, whose first evaluation (at x0) also checks that f leaves its input alone: a field that modifies x in place
/// (x.neg_()) would silently corrupt the caller's x0 and every stage after it. One copy of x0 per solve.
let private leavesInputAlone (f: float -> Tensor -> Tensor) (x0: Tensor) (t0: float) : float -> Tensor -> Tensor =
    let mutable first = true
    fun t x ->
        if not first then f t x
        else
            first <- false
            let pristine = (use _ = torch.no_grad() in (use d = x0.detach() in d.clone()))
            let dx = f t x
            use _ = pristine
            use _ = torch.no_grad()
            if not (x0.allclose(pristine, 0.0, 0.0)) then
                // Give the caller back the x0 they passed.
                (use d = x0.detach() in d.copy_(pristine) |> ignore)
                raise (OdeSolveException(OdeFailure.VectorFieldMismatch, t0, $"The vector field modified its input x in place at t = {t0} (an in-place operation such as x.neg_() or x.add_(...)). f must return dx/dt as a new tensor and leave x unchanged; x0 has been restored."))
            dx

/// Knobs of the tensor front that the public API does not expose.
type Settings =
    { /// Entries of the flat state, from the first, that enter the error norm (the adjoints' seminorm); negative: all.
      NormChannels: int
      /// Keep every accepted step (for dense evaluation anywhere afterwards).
      Record: bool
      /// Raise an OdeSolveException when the loop fails (true), or return the outputs reached with the failure in
      /// the solution's Status (false: Ode.trySolve).
      Throw: bool
      /// A step of another kind in place of the tableau's (Loop.Settings.Step).
      Step: ((float -> Tensor -> Tensor) -> float -> Tensor -> float -> Tensor -> RungeKuttaStep.StepResult<Tensor>) option
      /// Sees each accepted step with the (checked) field; true ends the solve after it (Loop.Settings.Stop).
      Watch: ((float -> Tensor -> Tensor) -> Loop.AcceptedStep<Tensor> -> bool) option }

let defaultSettings = { NormChannels = -1; Record = false; Throw = true; Step = None; Watch = None }

/// Solves the problem with the tableau under the step control, with the given settings; returns the solution and,
/// when recording, the trajectory of accepted steps (else None).
let solveWith (settings: Settings) (problem: OdeProblem) (tableau: ButcherTableau) (control: StepControl) : OdeSolution * DenseTrajectory option =
    StepRules.validate problem tableau control
    let times = problem.Times
    let x0 = problem.X0
    use algebra = new TensorAlgebra()
    let f = leavesInputAlone (checkedField FieldCheck.whole problem.VectorField (fun () -> algebra.CurrentScope)) x0 problem.T0
    let outputs = Array.zeroCreate<Tensor> times.Length
    outputs[0] <- x0
    let records = Collections.Generic.List<Loop.AcceptedStep<Tensor>>()
    let mutable partEvaluations = 0
    // An implicit solver's steps (with their Jacobian kept across steps), unless a step of another kind is given.
    let implicitStepper =
        if not tableau.IsImplicit || settings.Step.IsSome then None
        else
            // A split problem's parts, checked as the field is, for an IMEX tableau's explicit and implicit stages;
            // each evaluation of a part counts as one of the solve's evaluations.
            let counted name part =
                let checkedPart = checkedField name part (fun () -> algebra.CurrentScope)
                fun t x ->
                    partEvaluations <- partEvaluations + 1
                    checkedPart t x
            let parts =
                OdeProblem.splitParts problem |> Option.map (fun (nonStiff, stiff) -> counted FieldCheck.nonStiff nonStiff, counted FieldCheck.stiff stiff)
            Some(Implicit.ImplicitStep.create tableau control parts)
    let mutable failedRows = [||]
    let loopSettings: Loop.Settings<Tensor> =
        { NormChannels = settings.NormChannels
          KeepSteps = settings.Record
          Observer =
            if not settings.Record then None
            else
                Some(fun step ->
                    // The first step starts at the caller's x0: the trajectory gets a wrapper of its own.
                    let y0 = if obj.ReferenceEquals(step.Y0, x0) then x0.alias().MoveToOuterDisposeScope() else step.Y0
                    records.Add { step with Y0 = y0 })
          OnFailure =
            if settings.Throw then None
            else
                Some(fun e t y fy h ->
                    failedRows <-
                        match e.Failure with
                        | _ when tableau.IsImplicit -> [||]
                        | OdeFailure.NonFiniteValue | OdeFailure.StepSizeUnderflow | OdeFailure.MaxStepsExceeded | OdeFailure.InvalidStepSize ->
                            RowDiagnosis.rows tableau problem.VectorField control t y fy h
                        | _ -> [||])
          Step =
            match settings.Step, implicitStepper with
            | Some step, _ -> Some step
            | None, Some stepper -> Some stepper.Step
            | None, None -> None
          Stop = settings.Watch |> Option.map (fun watch -> watch f) }
    try
        let outcome =
            Loop.run algebra f x0 times tableau control loopSettings (fun k y -> outputs[k] <- y.alias().MoveToOuterDisposeScope())
        // On failure (trySolve) the outputs reached so far: times[0 .. Reached − 1].
        let reached = outcome.Reached
        let states = torch.stack(outputs[0 .. reached - 1])
        let solution =
            { Times = times[0 .. reached - 1]
              States = states
              Integral = None
              Statistics =
                let statistics = { outcome.Statistics with FunctionEvaluations = outcome.Statistics.FunctionEvaluations + partEvaluations }
                match implicitStepper with
                | Some stepper -> { statistics with Switches = stepper.Switches() }
                | None -> statistics
              Backward = BackwardStatistics()
              Status = (match outcome.Failure with Some e -> SolveStatus.Failed(e.Failure, e.Time, e.Message) | None -> SolveStatus.Succeeded)
              FailedRows = failedRows }
        let trajectory = if settings.Record then Some(new DenseTrajectory(tableau, records.ToArray())) else None
        records.Clear()
        solution, trajectory
    finally
        implicitStepper |> Option.iter (fun stepper -> stepper.Resources.Dispose())
        for i in 1 .. outputs.Length - 1 do
            if not (isNull outputs[i]) && not (obj.ReferenceEquals(outputs[i], x0)) then outputs[i].Dispose()
        // On failure, recorded steps are still here: free them.
        if records.Count > 0 then (new DenseTrajectory(tableau, records.ToArray()) :> IDisposable).Dispose()

/// Solves the problem with the tableau under the step control; see Ode.solve.
let solve (problem: OdeProblem) (tableau: ButcherTableau) (control: StepControl) : OdeSolution =
    fst (solveWith defaultSettings problem tableau control)
