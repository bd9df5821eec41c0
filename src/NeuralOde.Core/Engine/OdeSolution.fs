namespace NeuralOde.Core

open System
open TorchSharp

/// A point where the stiffness switcher (Solvers.autoSwitch) handed the solve to its other method.
type SolverSwitch =
    { /// The time from which the new method steps.
      Time: float
      /// The method that took over (its name).
      Solver: string }

    override s.ToString() = $"{s.Solver} from t = {s.Time:G6}"

/// Counts gathered during one solve.
type SolveStatistics =
    { /// Evaluations of the vector field (including the first-step heuristic's).
      FunctionEvaluations: int
      /// Steps accepted.
      AcceptedSteps: int
      /// Steps rejected by error control.
      RejectedSteps: int
      /// What evaluated the field: "module" (the field called on tensors), or a compiled backend's name (e.g.
      /// "compiled MLP"); when a backend was attached but could not run, "module" with the reason after a colon.
      Backend: string
      /// Where the stiffness switcher (Solvers.autoSwitch) changed method, in order; empty for every other solver.
      Switches: SolverSwitch[] }

    /// No steps yet.
    static member Zero = { FunctionEvaluations = 0; AcceptedSteps = 0; RejectedSteps = 0; Backend = "module"; Switches = [||] }

    override s.ToString() =
        let switches = if s.Switches.Length = 0 then "" else " switches=[" + (s.Switches |> Array.map string |> String.concat "; ") + "]"
        $"nfe={s.FunctionEvaluations} accepted={s.AcceptedSteps} rejected={s.RejectedSteps} backend={s.Backend}{switches}"

/// Counts of the backward (adjoint) solve, filled in when gradients are computed by an adjoint method; zero for
/// autograd through the solver, whose backward pass is libtorch's.
[<AllowNullLiteral>]
type BackwardStatistics() =
    /// Evaluations of the augmented (adjoint) vector field.
    member val FunctionEvaluations = 0 with get, set
    /// Steps accepted by the backward solves.
    member val AcceptedSteps = 0 with get, set
    /// Steps rejected by the backward solves' error control.
    member val RejectedSteps = 0 with get, set
    /// How many backward passes have run through this solution.
    member val BackwardPasses = 0 with get, set
    member internal s.Add(stats: SolveStatistics) =
        s.FunctionEvaluations <- s.FunctionEvaluations + stats.FunctionEvaluations
        s.AcceptedSteps <- s.AcceptedSteps + stats.AcceptedSteps
        s.RejectedSteps <- s.RejectedSteps + stats.RejectedSteps
    override s.ToString() =
        $"backward nfe={s.FunctionEvaluations} accepted={s.AcceptedSteps} rejected={s.RejectedSteps}"

/// A model that solves ODEs and reports the counts of its most recent solve (blocks, adaptive-depth models, CNFs), so
/// a trainer can report function evaluations per iteration whatever the model.
type ISolveStatistics =
    /// Counts of the most recent forward solve.
    abstract LastStatistics: SolveStatistics
    /// Counts of the backward solve of the most recent forward solve (adjoint sensitivities; zero for autograd).
    abstract LastBackwardStatistics: BackwardStatistics

/// How a solve ended: it reached its end time, or (solved with Ode.trySolve, diffrax's throw=False) it stopped at
/// `time` for `failure`, and the solution holds the outputs computed before that.
[<RequireQualifiedAccess>]
type SolveStatus =
    /// Every output time was reached.
    | Succeeded
    /// The solve stopped at `time` for `failure`; `message` says what to try.
    | Failed of failure: OdeFailure * time: float * message: string

/// The solution at the requested times. Owns `States` (native memory): dispose it, or let a dispose scope do so.
type OdeSolution =
    { /// The requested output times.
      Times: float[]
      /// The states, stacked: shape [Times.Length; ...x0.shape].
      States: torch.Tensor
      /// ∫ l(t, x(t)) dt over the whole span, when the problem has an integral loss (a 0-dim tensor).
      Integral: torch.Tensor option
      /// Counts of the forward solve.
      Statistics: SolveStatistics
      /// Counts of the backward solve, for adjoint sensitivities (filled in by backward()).
      Backward: BackwardStatistics
      /// Succeeded, or where and why a solve by Ode.trySolve stopped (Times and States then end at the last
      /// output reached). Ode.solve raises instead.
      Status: SolveStatus
      /// When a solve by Ode.trySolve failed: the rows of the batch (indices along x0's first dimension) the failure
      /// is attributed to — those whose state or field went NaN or Inf, else whose error drove the step size down.
      /// Empty when it succeeded, for a 0-dim state or a running loss, or when no row could be singled out.
      /// Rows.trySolve drops them and solves the rest again.
      FailedRows: int[] }

    /// The state at the last output time.
    member s.Final = s.States[s.Times.Length - 1]

    interface IDisposable with
        member s.Dispose() =
            s.States.Dispose()
            s.Integral |> Option.iter (fun i -> i.Dispose())
