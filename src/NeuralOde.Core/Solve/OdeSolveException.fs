namespace NeuralOde.Core

open System

/// Why a solve stopped before reaching its final time. Each message says what happened and what to try.
type OdeFailure =
    /// The step size fell below what the time's floating-point resolution allows.
    | StepSizeUnderflow = 1
    /// The step budget (AdaptiveOptions.MaxSteps) ran out.
    | MaxStepsExceeded = 2
    /// The state or the vector field's output held NaN or Inf.
    | NonFiniteValue = 3
    /// The vector field returned a tensor whose shape, dtype or device differs from the state's.
    | VectorFieldMismatch = 4
    /// The step-size controller produced a step that is NaN or infinite (e.g. the initial-step heuristic on an
    /// overflowing state).
    | InvalidStepSize = 5

/// Raised when a solve fails part-way. `Time` is where it happened.
type OdeSolveException(failure: OdeFailure, time: float, message: string, inner: exn) =
    inherit Exception(message, inner)
    /// An exception with no inner exception.
    new(failure, time, message) = OdeSolveException(failure, time, message, null)
    /// What went wrong.
    member _.Failure = failure
    /// The time at which it went wrong.
    member _.Time = time
