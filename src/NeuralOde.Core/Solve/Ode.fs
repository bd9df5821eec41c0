/// The front door: solve a problem with a solver (a tableau) under a step control, with gradients by the chosen
/// sensitivity method.
module NeuralOde.Core.Ode

open System
open TorchSharp

let private adjoint (interpolated: bool) (o: AdjointOptions) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) =
    if o.Checkpoints < 0 then
        raise (ArgumentOutOfRangeException("Checkpoints", o.Checkpoints, $"Checkpoints must be zero or more; got {o.Checkpoints}."))
    let backwardSolver = defaultArg o.Solver solver
    let backwardControl = defaultArg o.Control control
    StepControl.validate backwardControl
    let grid, outputIndex = AdjointFunction.grid problem.Times o.Checkpoints
    let statistics = BackwardStatistics()
    let config: AdjointFunction.Config =
        { Field = problem.VectorField; Loss = problem.IntegralLoss; Times = problem.Times; Grid = grid
          OutputIndex = outputIndex; Shape = problem.X0.shape; Parameters = problem.Parameters
          Forward = (solver, control); Backward = (backwardSolver, backwardControl); Seminorm = o.Seminorm
          Interpolated = interpolated; Statistics = statistics
          TimeTensor = (match problem.TimeTensor with Some t -> t | None -> null)
          ForwardStatistics = { FunctionEvaluations = 0; AcceptedSteps = 0; RejectedSteps = 0 }
          Handed = Collections.Generic.List<torch.Tensor>() }
    let vars: obj[] =
        Array.append [| box config; box problem.X0; (match problem.TimeTensor with Some t -> box t | None -> null) |]
                     (problem.Parameters |> Array.map box)
    let outputs =
        try AdjointFunction.OdeAdjoint.apply(vars)
        finally
            for t in config.Handed do t.Dispose()
            config.Handed.Clear()
    let integral = if problem.IntegralLoss.IsSome then Some outputs[1] else (outputs[1].Dispose(); None)
    { Times = Array.copy problem.Times; States = outputs[0]; Integral = integral
      Statistics = config.ForwardStatistics; Backward = statistics }

/// Solves `problem` with `solver` under `control`; gradients of the returned states (and of the integral of the
/// problem's running loss) flow back by `sensitivity`:
/// - Autograd: through the solver's operations;
/// - Adjoint / InterpolatedAdjoint: by the adjoint system, to x0, to the problem's Parameters and, when the problem
///   has a time tensor, to the output times.
let solveWith (sensitivity: Sensitivity) (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    StepControl.validate control
    match sensitivity with
    | Sensitivity.Autograd ->
        if problem.TimeTensor.IsSome then
            raise (ArgumentException("Gradients with respect to the times need an adjoint sensitivity (Sensitivity.Adjoint or InterpolatedAdjoint).", "sensitivity"))
        match problem.IntegralLoss with
        | None -> Integrate.solve problem solver control
        | Some loss ->
            use y0 = RunningLoss.initial problem.X0
            let shape = problem.X0.shape
            let augmented = OdeProblem.create (RunningLoss.augmentedField problem.VectorField loss shape) y0 problem.Times
            let solution = Integrate.solve augmented solver control
            let states, integral = RunningLoss.split shape solution.States
            solution.States.Dispose()
            { solution with States = states; Integral = Some integral }
    | Sensitivity.Adjoint o -> adjoint false o problem solver control
    | Sensitivity.InterpolatedAdjoint o -> adjoint true o problem solver control

/// Solves `problem` with `solver` under `control`, with gradients by autograd through the solver's operations
/// (discretise-then-optimise): when x0 or tensors captured by the vector field require grad, the returned states
/// are differentiable. The states are on x0's device with x0's dtype.
let solve (problem: OdeProblem) (solver: ButcherTableau) (control: StepControl) : OdeSolution =
    solveWith Sensitivity.Autograd problem solver control

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
        match BackwardFailure.take () with
        | Some (:? OdeSolveException as e) ->
            raise (OdeSolveException(e.Failure, e.Time, $"The adjoint's backward solve failed: {e.Message}", inner))
        | Some e -> raise (InvalidOperationException($"The adjoint's backward pass failed: {e.Message}", e))
        | None -> ()
    try loss.backward()
    with :? Runtime.InteropServices.ExternalException as e ->
        raiseRecorded e
        reraise ()
    // A failure libtorch could not be made to reject (0-dim inputs only) is raised here.
    raiseRecorded null
