/// The front door: solve a problem with a solver (a tableau) under a step control, with gradients by the chosen
/// sensitivity method.
module NeuralOde.Core.Ode

open System
open TorchSharp

/// The most states an adjoint's checkpoint grid may hold.
let maxCheckpointGrid = 1_000_000

/// How a solve runs, apart from what it solves and how it is differentiated.
type SolveOptions =
    { /// Threads a compiled field backend splits the batch's rows over (each chunk's thread runs libtorch on one
      /// thread); None: libtorch's intra-op thread count when the solve starts. Only this solve is affected.
      Threads: int option }

/// Default options: the compiled backend's rows over libtorch's intra-op threads.
let defaultOptions = { Threads = None }

/// The compiled backend that can run this problem, or why none can (None: no backend attached).
let private backendFor (problem: OdeProblem) : Result<ICompilingBackend, string> option =
    match problem.FieldBackend with
    | None -> None
    | Some(:? ICompilingBackend as b) ->
        match b.Refusal problem.X0 with
        | Some why -> Some(Error why)
        | None -> Some(Ok b)
    | Some other -> Some(Error $"the backend '{other.Name}' is not one this library compiles")

/// Whether a solve must be differentiable: gradients are enabled and x0 or a declared parameter requires them.
let private needsGradient (problem: OdeProblem) =
    torch.is_grad_enabled () && (problem.X0.requires_grad || problem.Parameters |> Array.exists (fun p -> p.requires_grad))

let private threadsOf (options: SolveOptions) =
    match options.Threads with
    | Some n when n < 1 -> raise (ArgumentOutOfRangeException("threads", n, $"threads must be at least 1; got {n}."))
    | Some n -> n
    | None -> torch.get_num_threads ()

/// The adjoint's plan (grid, methods), checking the options.
let private plan (interpolated: bool) (o: AdjointOptions) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : AdjointSweep.Plan =
    if o.Checkpoints < 0 then
        raise (ArgumentOutOfRangeException("checkpoints", o.Checkpoints, $"checkpoints must be zero or more; got {o.Checkpoints}."))
    // The grid holds (intervals)·(checkpoints + 1) + 1 points, each a stored state: bounded, in 64-bit arithmetic.
    let gridPoints = int64 (problem.Times.Length - 1) * (int64 o.Checkpoints + 1L) + 1L
    if gridPoints > int64 maxCheckpointGrid then
        raise (ArgumentOutOfRangeException("checkpoints", o.Checkpoints, $"checkpoints = {o.Checkpoints} per interval over {problem.Times.Length - 1} interval(s) makes a grid of {gridPoints} stored states, more than {maxCheckpointGrid}; use fewer checkpoints."))
    let backwardSolver = defaultArg o.Solver solver
    let backwardControl = defaultArg o.Control control
    StepControl.validate backwardControl
    let grid, outputIndex = AdjointSweep.grid problem.Times o.Checkpoints
    { Times = Array.copy problem.Times; Grid = grid; OutputIndex = outputIndex; Forward = (solver, control)
      Backward = (backwardSolver, backwardControl); Seminorm = o.Seminorm; Interpolated = interpolated; Statistics = BackwardStatistics() }

/// An adjoint solve (backsolve or interpolated) by the one autograd function, on tensors or on a compiled backend.
let private adjoint (options: SolveOptions) (compiled: ICompilingBackend option) (interpolated: bool) (o: AdjointOptions) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) =
    let plan = plan interpolated o problem solver control
    let run: AdjointSweep.IAdjointRun =
        match compiled with
        | Some backend ->
            // The grid holds the output times: its checks are the problem's.
            StepRules.validateSolve plan.Grid problem.X0 solver control
            CompiledAdjoint.Run(
                { Backend = backend; Threads = threadsOf options; Shape = problem.X0.shape; Length = int (problem.X0.numel())
                  DType = problem.X0.dtype; Parameters = problem.Parameters; Plan = plan })
        | None ->
            TensorAdjoint.Run(
                { Field = problem.VectorField; Vjp = problem.VectorJacobianProduct; Loss = problem.IntegralLoss
                  Shape = problem.X0.shape; DType = problem.X0.dtype; Parameters = problem.Parameters; Plan = plan })
    let config: AdjointFunction.Config =
        { Run = run; Shape = problem.X0.shape; Parameters = problem.Parameters; HasLoss = problem.IntegralLoss.IsSome
          TimeTensor = (match problem.TimeTensor with Some t -> t | None -> null)
          Handed = Collections.Generic.List<torch.Tensor>() }
    // A sentinel input of shape [1] that requires grad: a failed backward hands it a 0-dim gradient, which libtorch
    // always rejects — also when every other input is 0-dim, whose gradients libtorch would reduce from any shape.
    let sentinel = torch.zeros([| 1L |], dtype = problem.X0.dtype, device = problem.X0.device).requires_grad_(true)
    config.Handed.Add sentinel
    let vars: obj[] =
        Array.concat [ [| box config; box problem.X0; (match problem.TimeTensor with Some t -> box t | None -> null) |]
                       problem.Parameters |> Array.map box
                       [| box sentinel |] ]
    let outputs =
        try AdjointFunction.OdeAdjoint.apply(vars)
        finally
            for t in config.Handed do t.Dispose()
            config.Handed.Clear()
    let integral = if problem.IntegralLoss.IsSome then Some outputs[1] else (outputs[1].Dispose(); None)
    { Times = Array.copy problem.Times; States = outputs[0]; Integral = integral
      Statistics = run.ForwardStatistics; Backward = plan.Statistics; Status = SolveStatus.Succeeded; FailedRows = [||] }

/// A solve on a compiled backend with no gradient: the loop on its buffers, outputs at the problem's times.
let private compiledValue (options: SolveOptions) (backend: ICompilingBackend) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) =
    StepRules.validate problem solver control
    let plan = plan false Sensitivity.defaultOptions problem solver control
    let run =
        CompiledAdjoint.Run(
            { Backend = backend; Threads = threadsOf options; Shape = problem.X0.shape; Length = int (problem.X0.numel())
              DType = problem.X0.dtype; Parameters = problem.Parameters; Plan = plan }) :> AdjointSweep.IAdjointRun
    let states, integral, _ = run.Forward problem.X0
    integral.Dispose()
    { Times = Array.copy problem.Times; States = states; Integral = None
      Statistics = run.ForwardStatistics; Backward = BackwardStatistics(); Status = SolveStatus.Succeeded; FailedRows = [||] }

/// Autograd on a compiled backend with fixed steps: the discrete adjoint of the steps.
let private discrete (options: SolveOptions) (backend: ICompilingBackend) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) =
    StepRules.validate problem solver control
    let config: DiscreteAdjoint.Config =
        { Backend = backend; Threads = threadsOf options; Problem = problem; Tableau = solver; Control = control
          Handed = Collections.Generic.List<torch.Tensor>(); Statistics = SolveStatistics.Zero }
    let states = DiscreteAdjoint.solve config
    { Times = Array.copy problem.Times; States = states; Integral = None
      Statistics = config.Statistics; Backward = BackwardStatistics(); Status = SolveStatus.Succeeded; FailedRows = [||] }

/// Autograd through the solver's operations, with the running loss (if any) integrated alongside.
let private throughSolver (settings: Integrate.Settings) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) =
    if problem.TimeTensor.IsSome then
        raise (ArgumentException("Gradients with respect to the times need an adjoint sensitivity (Sensitivity.adjoint or interpolatedAdjoint; C#: Sensitivities.Adjoint() or InterpolatedAdjoint()).", "sensitivity"))
    match problem.IntegralLoss with
    | None -> fst (Integrate.solveWith settings problem solver control)
    | Some loss ->
        use y0 = RunningLoss.initial problem.X0
        let shape = problem.X0.shape
        let augmented = OdeProblem.create (RunningLoss.augmentedField problem.VectorField loss shape) y0 problem.Times
        let solution = fst (Integrate.solveWith settings augmented solver control)
        let states, integral = RunningLoss.split shape solution.States
        solution.States.Dispose()
        // Rows of the augmented state (flattened, with the integral) are not the batch's rows.
        { solution with States = states; Integral = Some integral; FailedRows = [||] }

/// The dispatch: the one place that chooses how a solve runs. A problem with a compiled field backend runs on it where
/// the sensitivity allows — autograd with fixed steps by the discrete adjoint, the adjoints by the compiled adjoint,
/// any control when no gradient is needed — and on tensors otherwise (a running loss, autograd through adaptive steps,
/// a time tensor with autograd), the reason in the statistics' Backend.
let solveWithOptions (options: SolveOptions) (sensitivity: Sensitivity) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    StepControl.validate control
    // A Rosenbrock method needs the exact Jacobian of the system it solves: an adjoint system's would take second
    // derivatives of f (its Newton matrices, Implicit/NewtonMatrix.fs, approximate it, which only a Newton iteration
    // tolerates).
    let rosenbrock (t: ButcherTableau) = t.IsRosenbrock || (t.Switching |> Option.exists (fun r -> r.Implicit.IsRosenbrock))
    match sensitivity with
    | Sensitivity.Adjoint o | Sensitivity.InterpolatedAdjoint o when rosenbrock (defaultArg o.Solver solver) ->
        let backward = defaultArg o.Solver solver
        raise (ArgumentException($"The adjoint's backward solve cannot take the Rosenbrock method {backward.Name}: it needs the exact Jacobian of the adjoint system. Give the adjoint an ESDIRK method for it (Sensitivity.InterpolatedAdjoint {{ Sensitivity.defaultOptions with Solver = Some Solvers.kvaerno5 }}; C#: Sensitivities.InterpolatedAdjoint(solver: Solvers.Kvaerno5())), or use Sensitivity.Autograd.", "sensitivity"))
    | _ -> ()
    // A running loss makes the state [x.flatten(); ∫l] one vector, whose rows are no batch: per-row Jacobian blocks
    // would drop the loss's row and every coupling, silently for a Rosenbrock method.
    let rowBlocks (t: ButcherTableau) = t.IsImplicit && t.Newton.Structure = JacobianStructure.RowBlocks
    let backwardSolver = match sensitivity with Sensitivity.Adjoint o | Sensitivity.InterpolatedAdjoint o -> o.Solver | _ -> None
    if problem.IntegralLoss.IsSome && (rowBlocks solver || backwardSolver |> Option.exists rowBlocks) then
        raise (ArgumentException("A running loss joins the state and its integral in one vector: per-row Jacobian blocks (rowBlocks / JacobianStructure.RowBlocks) do not apply to it. Use the dense Jacobian, or add the loss at the output times.", "solver"))
    // An implicit solver, forward or in an adjoint's backward solve, runs on tensors (its Newton iteration does).
    let implicitSolve =
        match sensitivity with
        | Sensitivity.Adjoint o | Sensitivity.InterpolatedAdjoint o when (o.Solver |> Option.exists (fun s -> s.IsImplicit)) -> Some (Option.get o.Solver)
        | _ when solver.IsImplicit -> Some solver
        | _ -> None
    let onTensors (why: string option) =
        let solution =
            match sensitivity with
            | Sensitivity.Autograd -> throughSolver Integrate.defaultSettings problem solver control
            | Sensitivity.Adjoint o -> adjoint options None false o problem solver control
            | Sensitivity.InterpolatedAdjoint o -> adjoint options None true o problem solver control
        match why with
        | Some reason -> { solution with Statistics = { solution.Statistics with Backend = $"module: {reason}" } }
        | None -> solution
    match backendFor problem with
    | None -> onTensors None
    | Some(Error why) -> onTensors (Some why)
    | Some(Ok _) when problem.IntegralLoss.IsSome -> onTensors (Some "a running loss is evaluated on tensors")
    | Some(Ok _) when implicitSolve.IsSome -> onTensors (Some $"the implicit solver {implicitSolve.Value.Name} runs on tensors")
    | Some(Ok backend) ->
        match sensitivity with
        | Sensitivity.Adjoint o -> adjoint options (Some backend) false o problem solver control
        | Sensitivity.InterpolatedAdjoint o -> adjoint options (Some backend) true o problem solver control
        | Sensitivity.Autograd when problem.TimeTensor.IsSome -> onTensors None
        | Sensitivity.Autograd when not (needsGradient problem) -> compiledValue options backend problem solver control
        | Sensitivity.Autograd ->
            match control with
            | StepControl.Adaptive _ -> onTensors (Some "autograd through adaptive steps runs on tensors (the adjoints run compiled)")
            | _ when not backend.CanTape -> onTensors (Some $"{backend.Name} keeps no tape for the discrete adjoint (the adjoints run compiled)")
            | _ -> discrete options backend problem solver control

/// Solves `problem` with `solver` under `control`; gradients of the returned states (and of the integral of the
/// problem's running loss) flow back by `sensitivity`:
/// - Autograd: through the solver's operations;
/// - Adjoint / InterpolatedAdjoint: by the adjoint system, to x0, to the problem's Parameters and, when the problem
///   has a time tensor, to the output times.
/// A problem with a field backend (OdeProblem.withFieldBackend) runs on it where it can (see solveWithOptions).
let solveWith (sensitivity: Sensitivity) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    solveWithOptions defaultOptions sensitivity problem solver control

/// Solves like `solveWith`, but a failure part-way (step budget, step-size underflow, NaN or Inf, a field that
/// returns the wrong shape) does not raise (diffrax's throw=False): the solution holds the outputs reached before it
/// — its Times and States stop there — and Status says where and why it stopped. Gradients by autograd through
/// the solver (adjoint sensitivities raise here: their backward pass needs the whole forward solve).
let trySolveWith (sensitivity: Sensitivity) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    StepControl.validate control
    match sensitivity with
    | Sensitivity.Autograd -> throughSolver { Integrate.defaultSettings with Throw = false } problem solver control
    | _ -> raise (ArgumentException("trySolve computes gradients by autograd only: an adjoint's backward pass needs the whole forward solve. Use Sensitivity.Autograd, or solveWith and catch OdeSolveException.", "sensitivity"))

/// `trySolveWith` by autograd.
let trySolve (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    trySolveWith Sensitivity.Autograd problem solver control

/// Solves `problem` with `solver` under `control`, with gradients by autograd through the solver's operations
/// (discretise-then-optimise): when x0 or tensors captured by the vector field require grad, the returned states
/// are differentiable. The states are on x0's device with x0's dtype.
let solve (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    solveWith Sensitivity.Autograd problem solver control

/// Solves `problem` by autograd like `solve`, and keeps every accepted step, so that the solution can be evaluated at
/// any time of the span afterwards by the solver's dense output (its continuous extension, or cubic Hermite
/// interpolation): diffrax's SaveAt(dense=True) with sol.evaluate(t), torchdyn's interpolated trajectories.
/// Evaluations are differentiable by autograd, like the states. Dispose both results (the trajectory holds every
/// step's stages). A running loss is refused: add it to the field, or use `solveWith`.
let solveDense (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution * DenseTrajectory =
    if problem.IntegralLoss.IsSome then
        raise (ArgumentException("solveDense does not take a running loss (its integral would need its own dense output); use solveWith for the integral.", "problem"))
    if problem.TimeTensor.IsSome then
        raise (ArgumentException("solveDense differentiates by autograd, which cannot give gradients with respect to the output times; use solveWith with an adjoint sensitivity.", "problem"))
    match Integrate.solveWith { Integrate.defaultSettings with Record = true } problem solver control with
    | solution, Some trajectory -> solution, trajectory
    | solution, None ->
        solution.States.Dispose()
        raise (InvalidOperationException("The solve recorded no trajectory."))

/// Shorthand: solve dx/dt = f(t, x) from x0 at times[0] with outputs at `times`, by autograd.
let odeint (f: VectorField) (x0: torch.Tensor) (times: float[]) (solver: ButcherTableau) (control: StepControl) =
    solve (OdeProblem.create f x0 times) solver control

/// `loss.backward()`, with the adjoint's failures raised as themselves. A backward solve of an adjoint sensitivity
/// that fails (step budget, step-size underflow, NaN, an exception from the vector field) cannot raise through
/// libtorch's engine; `loss.backward()` then raises an ExternalException about an invalid gradient (see
/// BackwardFailure). This raises the backward solve's own exception (e.g. an OdeSolveException with the time), with
/// libtorch's as its inner exception.
let backward (loss: torch.Tensor) =
    BackwardFailure.clear ()
    let raiseRecorded (inner: exn) =
        // Another thread's record (a GPU pass runs on libtorch's device threads) is only taken for libtorch's
        // rejection of our gradients, not for an unrelated error of the caller's graph.
        let rejection = not (isNull inner) && inner.Message.Contains("invalid gradient")
        match BackwardFailure.take rejection with
        | Some (:? OdeSolveException as e) ->
            // The backward solve's exception inside (and in it, for a failing field, the field's own).
            raise (OdeSolveException(e.Failure, e.Time, $"The adjoint's backward solve failed: {e.Message}", e))
        | Some (:? OperationCanceledException as e) -> raise (OperationCanceledException($"The adjoint's backward solve was cancelled: {e.Message}", e, e.CancellationToken))
        | Some e -> raise (InvalidOperationException($"The adjoint's backward pass failed: {e.Message}", e))
        | None -> ()
    // Every recorded failure makes libtorch stop the pass (the sentinel input sees to it), so a pass that returns
    // normally had none — and must not pick up another thread's.
    try loss.backward()
    with :? Runtime.InteropServices.ExternalException as e ->
        raiseRecorded e
        reraise ()
